// nsqjs-client: nsqjs driven by the tidings tests as an unchanged NSQ client.
//
//   node client.js pub <nsqd-host:port> <topic> <n> [prefix]
//   node client.js sub <lookupd-host:port> <topic> <channel> <n> [req-every]
//
// `pub` prints {"published": n}. `sub` discovers nsqd through lookupd, finishes n distinct
// messages, requeues every req-every'th body once (on its first attempt) and prints
// {"finished": [...sorted bodies], "requeued": k, "max_attempts_seen": a}.
'use strict'
const nsq = require('nsqjs')

function fail (err) {
  process.stderr.write(`nsqjs-client: ${err && err.stack ? err.stack : err}\n`)
  process.exit(1)
}

function publish (address, topic, n, prefix) {
  const [host, port] = address.split(':')
  const writer = new nsq.Writer(host, Number(port))
  writer.on('error', fail)
  writer.on('ready', () => {
    const bodies = []
    for (let i = 0; i < n; i++) bodies.push(`${prefix}-${i}`)
    writer.publish(topic, bodies, (err) => {
      if (err) fail(err)
      process.stdout.write(JSON.stringify({ published: n }) + '\n')
      writer.close()
    })
  })
  writer.connect()
}

function consume (lookupd, topic, channel, n, reqEvery) {
  const reader = new nsq.Reader(topic, channel, {
    lookupdHTTPAddresses: lookupd,
    lookupdPollInterval: 1,
    maxInFlight: 10,
    requeueDelay: 0
  })
  const finished = new Set()
  let requeued = 0
  let maxAttempts = 0
  const timer = setTimeout(() => fail(`timed out with ${finished.size} of ${n}`), 30000)
  reader.on('error', (err) => process.stderr.write(`nsqjs-client: ${err}\n`))
  reader.on('message', (msg) => {
    const body = msg.body.toString()
    maxAttempts = Math.max(maxAttempts, msg.attempts)
    const index = Number(body.slice(body.lastIndexOf('-') + 1))
    if (reqEvery > 0 && msg.attempts === 1 && index % reqEvery === 0) {
      requeued++
      msg.requeue(0, false)
      return
    }
    msg.finish()
    finished.add(body)
    if (finished.size === n) {
      clearTimeout(timer)
      const result = { finished: [...finished].sort(), requeued, max_attempts_seen: maxAttempts }
      process.stdout.write(JSON.stringify(result) + '\n')
      // Give the FIN a moment to leave the socket before closing.
      setTimeout(() => { reader.close(); process.exit(0) }, 200)
    }
  })
  reader.connect()
}

const [mode, ...args] = process.argv.slice(2)
if (mode === 'pub') {
  publish(args[0], args[1], Number(args[2]), args[3] || 'nsqjs')
} else if (mode === 'sub') {
  consume(args[0], args[1], args[2], Number(args[3]), Number(args[4] || 0))
} else {
  fail('usage: client.js pub|sub ...')
}
