// The built-in devices, for embedding: each is a VirtioDevice to hand to a DeviceModelFactory.

export * as console from './console/index.js';
export * as rng from './rng/index.js';
