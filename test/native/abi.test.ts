// The addon's abi() (sizeof/offsetof and the _IOC macros, as this target's C compiler computes
// them) must equal lib/uapi's tables, for every revision.

import { describe, expect, it } from 'vitest';

import { loadAddon } from '../../lib/native.js';
import { ABI, REVISIONS } from '../../lib/uapi/index.js';

describe('the addon ABI table', () => {
  const native = loadAddon().abi();

  it('covers exactly the revisions lib/uapi knows', () => {
    expect(Object.keys(native).sort()).toEqual([...REVISIONS].sort());
  });

  for (const rev of REVISIONS) {
    it(`equals lib/uapi for ${rev}: ioctl type, numbers, sizes and offsets`, () => {
      expect(native[rev].ioctlType).toBe(ABI[rev].ioctlType);
      expect(native[rev].ioctls).toEqual(ABI[rev].ioctls);
      expect(native[rev].structs).toEqual(ABI[rev].structs);
    });
  }
});
