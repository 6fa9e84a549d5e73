/*
 * Points a wechat4u bot at a plain-http simulator: wechat4u builds every URL
 * in its `CONF` as `https://` + the login redirect's host (port dropped), so
 * `CONF` becomes an accessor that, on every assignment (the constructor's
 * and checkLogin's after code 200), rewrites each URL's leading
 * `https://HOST` to the simulator's origin. Paths, queries, headers and
 * bodies stay as wechat4u makes them. Shared by tests/compat/wechat4u_flow.js
 * and benches/perf/wechat4u_fetch.js.
 */
'use strict'

function pointAtSim (conf, sim) {
  for (const [k, v] of Object.entries(conf)) {
    if (typeof v === 'string') conf[k] = v.replace(/^https:\/\/[^/]+/, sim)
  }
  return conf
}

module.exports = function pointBotAt (bot, sim) {
  let conf = pointAtSim(bot.CONF, sim)
  Object.defineProperty(bot, 'CONF', {
    configurable: true,
    enumerable: true,
    get: () => conf,
    set: v => { conf = pointAtSim(v, sim) }
  })
}
