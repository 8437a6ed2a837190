// Compiled by `npm test` (tsc --strict, see tsconfig.json), never run: the
// README's program, and the calls other programs make, must type-check
// against index.d.ts through the package's own name.
import { Client, ImqttError, LocalStorageCursor, MemoryCursor, type Ack, type Msg, type Status } from 'imqtt';

async function main(): Promise<void> {
  const c = await Client.login({ server: 'http://127.0.0.1:8080', user: 'alice', password: 'secret', device: 'laptop', cursor: new MemoryCursor() });
  const seen: Msg[] = [];
  c.on('message', (ev) => {
    seen.push(ev);
    const from: string = ev.from;
    void from;
  });
  c.on('status', (s: Status) => {
    if (s.error instanceof ImqttError && s.error.code === 'unauthorized') void c.close();
  });
  await c.connect();
  await c.synced();
  const ack: Ack = await c.send({ to: 'bob', type: 'text', body: 'hi' });
  const stop = new AbortController();
  await c.send({ group: 'g1', body: 'hi all' }, { signal: stop.signal }).catch((e: ImqttError) => e.code === 'aborted');
  await c.recall(ack.id);
  await c.react(ack.id, '👍');
  await c.read({ peer: 'bob', upto: ack.id });
  const { conversations, total_unread } = await c.conversations();
  void conversations.map((r) => r.unread + total_unread);
  const page = await c.history('bob', { limit: 20 });
  void page.messages.at(0)?.body;
  const info = await c.upload(new Uint8Array([1, 2, 3]), { type: 'image/png', name: 'dot.png' });
  const { data } = await c.download(info.id, { thumb: true });
  void data.byteLength;
  c.typing({ peer: 'bob' });
  await c.disconnect();
  await c.connect();
  await c.close();
  new LocalStorageCursor('imqtt-cursor', { getItem: () => null, setItem: () => {} });
}

void main;
