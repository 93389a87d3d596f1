// State that survives the daemon: per device model, a memory-mapped file with the transport's
// registers and the journal of taken requests (see each module's banner).
export { DEFAULT_STATE_DIR, DeviceStateFile, type LoadOutcome, type StateIdentity } from './device-state-file.js';
export { RequestJournal, type JournalLeftovers } from './request-journal.js';
export { StateImage, STATE_FILE_BYTES, fnv1a, type ReadOutcome } from './state-image.js';
