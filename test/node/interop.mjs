// MQTT.js as a third-party imqtt client. Driven by e2e/interop_test.go:
// env URL (mqtt://host:port or ws://host:port/mqtt), PROTO (4 or 5), USER,
// DEVICE, TOKEN, PEER. It sends to PEER, waits for PEER's answer live,
// syncs (plain, then gzip-compressed), reads, recalls its message, and prints
// one JSON line per step.
import { gunzipSync } from 'node:zlib';
import mqtt from 'mqtt';

const { URL, PROTO, USER, DEVICE, TOKEN, PEER } = process.env;
const inbox = `im/u/${USER}/inbox`;
const direct = `im/u/${USER}/d/${DEVICE}`;
const out = (step, v) => console.log(JSON.stringify({ step, ...v }));
const fail = (why) => { console.error(why); process.exit(1); };
setTimeout(() => fail('timed out'), 20000);

const c = mqtt.connect(URL, {
  clientId: `${USER}/${DEVICE}`, username: USER, password: TOKEN,
  protocolVersion: Number(PROTO), clean: true, reconnectPeriod: 0,
});
const waiters = [];
const backlog = []; // events that came before anyone waited for them
const next = (pred) => new Promise((resolve) => {
  const i = backlog.findIndex(pred);
  if (i >= 0) resolve(backlog.splice(i, 1)[0]);
  else waiters.push({ pred, resolve });
});
c.on('error', (e) => fail(`mqtt error: ${e.message}`));
c.on('message', (topic, payload) => {
  const gzip = payload[0] === 0x1f && payload[1] === 0x8b; // asked for with "compress":"gzip"
  const ev = JSON.parse((gzip ? gunzipSync(payload) : payload).toString());
  ev.topic = topic;
  ev.gzip = gzip;
  const i = waiters.findIndex((w) => w.pred(ev));
  if (i >= 0) waiters.splice(i, 1)[0].resolve(ev);
  else backlog.push(ev);
});
c.on('connect', async () => {
  await c.subscribeAsync([inbox, direct], { qos: 1 });
  const props = PROTO === '5' ? { properties: { userProperties: { trace: 'abc' } } } : {};
  const ack = next((e) => e.kind === 'ack' && e.cmid === 'js-1');
  await c.publishAsync('im/send', JSON.stringify({ cmid: 'js-1', to: PEER, type: 'text', body: 'from mqtt.js' }), { qos: 1, ...props });
  out('ack', await ack);
  out('msg', await next((e) => e.kind === 'msg' && e.from === PEER && e.topic === inbox));
  const batch = next((e) => e.kind === 'sync');
  await c.publishAsync('im/sync', JSON.stringify({ since: 0 }), { qos: 1 });
  out('sync', await batch);
  const gzBatch = next((e) => e.kind === 'sync');
  await c.publishAsync('im/sync', JSON.stringify({ since: 0, compress: 'gzip' }), { qos: 1 });
  out('gzsync', await gzBatch);
  const unread = next((e) => e.kind === 'unread');
  await c.publishAsync('im/read', JSON.stringify({ peer: PEER }), { qos: 1 });
  out('unread', await unread);
  // A change of the message: recall it. The recall is acked on the device
  // topic, then comes live on the inbox (both parties' devices get it).
  const sent = await ack;
  const recallAck = next((e) => e.kind === 'ack' && e.cmid === 'js-r1');
  const recall = next((e) => e.kind === 'recall' && e.id === sent.id && e.topic === inbox);
  await c.publishAsync('im/recall', JSON.stringify({ cmid: 'js-r1', id: sent.id }), { qos: 1 });
  out('recallack', await recallAck);
  out('recall', await recall);
  out('rest', { events: backlog }); // what nobody waited for: a repeat would show here
  c.end(false, () => process.exit(0));
});
