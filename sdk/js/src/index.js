// imqtt: the JavaScript SDK of imqtt (docs/protocol.md, docs/http.md).
export { Client, decode, backoff } from './client.js';
export { Api, ImqttError, codeForStatus } from './http.js';
export { MemoryCursor, LocalStorageCursor, emptyCursor, normalCursor } from './cursor.js';
export { Sequencer, Groups, Held } from './sequencer.js';
export { checkEvent, checkBatch, checkHeads, validEmoji } from './check.js';
