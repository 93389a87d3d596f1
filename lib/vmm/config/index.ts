// The daemon configuration: schema, loading, normalized types, rendering.

export * from './types.js';
export { SERVED_DEVICE_TYPES, SERVED_DATA_PLANES, KNOWN_DEVICE_TYPES, type ServedDeviceType } from './served.js';
export { validateConfig, formatFieldPath, MAX_DM_ID_V2, type ValidatedConfig, type ValidateOptions, type FieldPath } from './normalize.js';
export { loadConfig, parseConfigText, type LoadConfigOptions } from './load.js';
export { configToJson, configToText, deviceToJson, issueToJson, type JsonValue } from './render.js';
