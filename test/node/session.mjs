// MQTT.js as a device with a persistent session. Driven by
// e2e/sessions_test.go: env URL (mqtt://host:port), PROTO (4 or 5), USER,
// DEVICE, PASSWORD, QOS (of the inbox subscription), CLEAN (1: a clean
// session, else persistent: clean:false), EXPIRY (on MQTT 5, the Session
// Expiry Interval sent, in seconds; 0 sends none). It subscribes to its
// inbox only when the CONNACK says the broker has no session for it (as a
// device that trusts its persistent session does), and prints one JSON
// line per thing seen:
//   {"step":"connack","present":bool}   the CONNACK and its session present flag
//   {"step":"ready"}                    subscribed (or the session restored it)
//   {"step":"msg","qos":N,"dup":bool,"payload":{...}}  each inbox PUBLISH
//   {"step":"closed"}                   the connection ended (a takeover, say)
// On SIGTERM it disconnects cleanly and exits.
import mqtt from 'mqtt';

const { URL, PROTO, USER, DEVICE, PASSWORD, QOS, CLEAN, EXPIRY } = process.env;
const inbox = `im/u/${USER}/inbox`;
const out = (v) => console.log(JSON.stringify(v));
const fail = (why) => { console.error(why); process.exit(1); };
const clean = CLEAN === '1';
const v5 = PROTO === '5';

const c = mqtt.connect(URL, {
  clientId: `${USER}/${DEVICE}`, username: USER, password: PASSWORD,
  protocolVersion: Number(PROTO), clean, reconnectPeriod: 0,
  ...(v5 && Number(EXPIRY) > 0 ? { properties: { sessionExpiryInterval: Number(EXPIRY) } } : {}),
});
c.on('error', (e) => fail(`mqtt error: ${e.message}`));
c.on('message', (topic, payload, packet) => {
  // MQTT.js writes the PUBACK right after this handler, in the same tick:
  // SIGTERM's end() comes after it.
  out({ step: 'msg', qos: packet.qos, dup: !!packet.dup, payload: JSON.parse(payload.toString()) });
});
c.on('close', () => { out({ step: 'closed' }); process.exit(0); });
c.on('connect', async (connack) => {
  out({ step: 'connack', present: !!connack.sessionPresent });
  if (!connack.sessionPresent) {
    const granted = await c.subscribeAsync(inbox, { qos: Number(QOS) });
    if (granted[0].qos > 2) fail(`subscription refused: ${JSON.stringify(granted)}`);
  }
  out({ step: 'ready' });
});
process.on('SIGTERM', () => c.end(false, () => process.exit(0)));
