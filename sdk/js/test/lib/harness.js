// A real imqttd for the SDK's tests: built once per run from this checkout
// (or IMQTTD, a binary already built), started on free ports with a temp
// data dir, waited for on /readyz, killed at the end. Nothing is mocked:
// the tests talk MQTT over WebSocket and HTTP to the server itself.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from 'node:net';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

let built = '';
// imqttd returns the path of the daemon's binary, building it once.
export function imqttd() {
  if (process.env.IMQTTD) return process.env.IMQTTD;
  if (built) return built;
  const dir = mkdtempSync(join(tmpdir(), 'imqttd-bin-'));
  built = join(dir, 'imqttd');
  execFileSync('go', ['build', '-o', built, './cmd/imqttd'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  return built;
}

// freePort asks the kernel for a port nobody listens on.
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// waitFor polls cond (sync or async) until it holds or ms pass.
export async function waitFor(cond, ms = 5000, what = 'condition') {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// Server is one imqttd process; restart() starts it again on the same
// ports and data dir (the clients reconnect to the same address).
export class Server {
  static async start(extra = []) {
    const s = new Server();
    s.dir = mkdtempSync(join(tmpdir(), 'imqttd-data-'));
    s.port = await freePort();
    s.extra = extra;
    s.url = `http://127.0.0.1:${s.port}`;
    await s.run();
    return s;
  }

  async run() {
    const args = ['--data-dir', this.dir, '--http-addr', `127.0.0.1:${this.port}`, '--mqtt-addr', '127.0.0.1:0',
      '--log-format', 'json', '--node-id', 'jssdk', '--max-send-rate', '100000', ...this.extra];
    this.proc = spawn(imqttd(), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.log = '';
    this.proc.stderr.on('data', (d) => {
      this.log = (this.log + d).slice(-20000); // the tail, for a failure's message
    });
    this.exited = new Promise((resolve) => this.proc.on('exit', resolve));
    await waitFor(async () => {
      if (this.proc.exitCode !== null) throw new Error('imqttd exited: ' + this.log);
      try {
        return (await fetch(this.url + '/readyz')).ok;
      } catch {
        return false;
      }
    }, 20000, 'imqttd /readyz');
  }

  // kill stops the process at once (SIGKILL: no drain, no goodbye).
  async kill() {
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  async restart() {
    await this.kill();
    await this.run();
  }

  async stop() {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
