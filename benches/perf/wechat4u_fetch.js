/*
 * The peer figure: wechat4u 0.7.14's own full fetch against the bench's
 * simulator. Prints one JSON line:
 *   {"fetch_ms", "contacts", "groups", "groups_with_members", "memberships"}
 *
 *     SIM_URL=http://127.0.0.1:PORT NODE_PATH=DIR/node_modules node wechat4u_fetch.js [--every-group]
 *
 * fetch_ms runs from wechat4u's webwxinit call (login done) until its own
 * contact load settles: every webwxgetcontact page, then its group batch
 * call. That is what `wxsync sync` does after `wxsync login`.
 *
 * As shipped, wechat4u asks for every saved group in ONE webwxbatchgetcontact
 * call; the server answers the first 50, so the other groups keep no
 * members. `--every-group` splits that call into calls of 50, one after the
 * other (the official web client's chunking), so wechat4u receives every
 * group's members, as wxsync does; the requests and their decoding stay
 * wechat4u's own.
 *
 * Like tests/compat/wechat4u_flow.js, the script only points wechat4u's URLs
 * at the simulator (its CONF is built for https on the login host's name)
 * and turns off the heartbeat text to filehelper with wechat4u's public
 * setPollingTargetGetter.
 */
'use strict'

const SIM = (process.env.SIM_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '')
const EVERY_GROUP = process.argv.includes('--every-group')
const BATCH = 50

const Wechat = require('wechat4u')
const pointBotAt = require('../../tests/compat/sim_origin')

function main () {
  const bot = new Wechat()
  pointBotAt(bot, SIM)
  bot.setPollingTargetGetter(() => '')

  let started = null
  const init = bot.init
  bot.init = function (...args) {
    if (started === null) started = process.hrtime.bigint()
    return init.apply(this, args)
  }
  if (EVERY_GROUP) {
    const batch = bot.batchGetContact
    bot.batchGetContact = async function (list) {
      let out = []
      for (let i = 0; i < list.length; i += BATCH) {
        out = out.concat(await batch.call(this, list.slice(i, i + BATCH)) || [])
      }
      return out
    }
  }

  const loaded = new Promise((resolve, reject) => {
    const getContact = bot._getContact
    bot._getContact = function (...args) {
      const p = getContact.apply(this, args)
      // The first call is the whole load; _init's own .then stores the
      // result in the same turn, so look once that has run.
      if (!args[0]) p.then(() => setImmediate(resolve), reject)
      return p
    }
  })
  const errors = []
  bot.on('error', err => errors.push(err.message))
  bot.on('uuid', () => {})
  bot.start()

  const limit = setTimeout(() => {
    console.error('wechat4u did not finish loading contacts in 300 s:', errors.join('; '))
    process.exit(1)
  }, 300000)
  loaded.then(() => {
    const ms = Number(process.hrtime.bigint() - started) / 1e6
    clearTimeout(limit)
    const all = Object.values(bot.contacts)
    const groups = all.filter(c => c.UserName.startsWith('@@'))
    const members = groups.map(g => (g.MemberList || []).length)
    console.log(JSON.stringify({
      fetch_ms: ms,
      contacts: all.length,
      groups: groups.length,
      groups_with_members: members.filter(n => n > 0).length,
      memberships: members.reduce((a, b) => a + b, 0),
      errors
    }))
    process.exit(0)
  })
}

main()
