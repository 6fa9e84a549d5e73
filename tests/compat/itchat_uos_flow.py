"""Runs itchat-uos (PyPI 1.4.1) against a running wxsync simulator and reports
every call the simulator refused.

    pip install itchat-uos==1.4.1
    SIM_URL=http://127.0.0.1:PORT python tests/compat/itchat_uos_flow.py

The simulator must run with auto_confirm (the default). itchat-uos 1.4.1 on
PyPI still carries the 1412-char extspam that died on 2022-01-01, so the
simulator (like the live servers) answers its ticket step with ret 1203; the
script patches in the current public constant, as the project's GitHub head did.
"""
import json
import os
import sys
import time
import urllib.request

import itchat
from itchat import config

SIM = os.environ.get("SIM_URL", "http://127.0.0.1:8080").rstrip("/")
CURRENT_EXTSPAM = (
    "Go8FCIkFEokFCggwMDAwMDAwMRAGGvAESySibk50w5Wb3uTl2c2h64jVVrV7gNs06GFlWplHQbY/5FfiO++1yH4ykC"
    "yNPWKXmco+wfQzK5R98D3so7rJ5LmGFvBLjGceleySrc3SOf2Pc1gVehzJgODeS0lDL3/I/0S2SSE98YgKleq6Uqx6ndTy9yaL9qFxJL7eiA/R"
    "3SEfTaW1SBoSITIu+EEkXff+Pv8NHOk7N57rcGk1w0ZzRrQDkXTOXFN2iHYIzAAZPIOY45Lsh+A4slpgnDiaOvRtlQYCt97nmPLuTipOJ8Qc5p"
    "M7ZsOsAPPrCQL7nK0I7aPrFDF0q4ziUUKettzW8MrAaiVfmbD1/VkmLNVqqZVvBCtRblXb5FHmtS8FxnqCzYP4WFvz3T0TcrOqwLX1M/DQvcHa"
    "GGw0B0y4bZMs7lVScGBFxMj3vbFi2SRKbKhaitxHfYHAOAa0X7/MSS0RNAjdwoyGHeOepXOKY+h3iHeqCvgOH6LOifdHf/1aaZNwSkGotYnYSc"
    "W8Yx63LnSwba7+hESrtPa/huRmB9KWvMCKbDThL/nne14hnL277EDCSocPu3rOSYjuB9gKSOdVmWsj9Dxb/iZIe+S6AiG29Esm+/eUacSba0k8"
    "wn5HhHg9d4tIcixrxveflc8vi2/wNQGVFNsGO6tB5WF0xf/plngOvQ1/ivGV/C1Qpdhzznh0ExAVJ6dwzNg7qIEBaw+BzTJTUuRcPk92Sn6QDn"
    "2Pu3mpONaEumacjW4w6ipPnPw+g2TfywJjeEcpSZaP4Q3YV5HG8D6UjWA4GSkBKculWpdCMadx0usMomsSS/74QgpYqcPkmamB4nVv1JxczYIT"
    "IqItIKjD35IGKAUwAA=="
)

config.BASE_URL = SIM
if "--stock-extspam" not in sys.argv:
    config.UOS_PATCH_EXTSPAM = CURRENT_EXTSPAM


def calls():
    with urllib.request.urlopen(SIM + "/__sim/calls") as r:
        return json.load(r)


def main():
    itchat.login(qrCallback=lambda **kw: None, loginCallback=lambda: None)
    if not itchat.originInstance.alive:
        print("login failed")
        return 1
    friends = itchat.get_friends(update=True)
    rooms = itchat.get_chatrooms(update=True)
    for i in range(0, len(rooms), 50):
        itchat.update_chatroom([r["UserName"] for r in rooms[i:i + 50]])
    if rooms:
        itchat.update_chatroom(rooms[0]["UserName"], detailedMember=True)
    time.sleep(2)  # let the receiving thread run synccheck/webwxsync
    itchat.logout()
    print(f"friends={len(friends)} chatrooms={len(rooms)}")
    ok = {0, 200, 201, 408, None}
    # The synccheck held while itchat logs out is answered 1101 by its own logout.
    refused = [c for c in calls()
               if c["endpoint"] != "Logout"
               and not (c["endpoint"] == "SyncCheck" and c["ret"] == 1101)
               and (c["status"] not in (200, 301) or c["ret"] not in ok)]
    for c in refused:
        print("REFUSED", c["endpoint"], c["method"], c["query"], c["status"], c["ret"])
    print(f"{len(calls())} calls, {len(refused)} refused")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
