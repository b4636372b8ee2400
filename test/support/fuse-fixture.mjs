// A file system of one file served straight through the FUSE binding (the built
// services/mount/build/Release/ferry_fuse.node, no MountService), so a test can make one reply go
// wrong the way a bug in the request handler would and see what the kernel's caller gets.
//
//   node fuse-fixture.mjs <mountpoint> <fault>
//
// The root (inode 1) holds `f` (inode 2, 4096 bytes of "a"). <fault> names the one reply made with
// an argument of the wrong type: data-not-array (read: no array), data-not-buffer (read: a string
// among the buffers), dir (readdir: no inode numbers), entry (lookup: a timeout that is a string),
// attr (getattr: no attribute array), open (a flag that is a string), err (an errno that is a
// string); `none` for none; `bad-handler` mounts with a handler that is not a function. Prints JSON lines:
// {event:'mounted'}, {event:'mountFailed',code,message}, {event:'replyFailed',op,code,message}
// (a reply threw), {event:'exit'} (libfuse's loop ended: unmounted).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const fuse = require('../../services/mount/build/Release/ferry_fuse.node');

const [mountpoint, fault] = process.argv.slice(2);
const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);
const OP = { EXIT: 0, LOOKUP: 1, FORGET: 2, GETATTR: 3, OPEN: 4, READ: 5, RELEASE: 6, OPENDIR: 7, READDIR: 8, RELEASEDIR: 9 };
const DIR = 0o40555;
const FILE = 0o100444;
const SIZE = 4096;
const attr = (ino) => (ino === 1 ? [1, DIR, 4096, 0, 2, 0, 0] : [2, FILE, SIZE, 0, 1, 0, 0]);
const options = 'ro,fsname=ferry-fixture,subtype=ferry';

function reply(op, send) {
  try {
    send();
  } catch (err) {
    say({ event: 'replyFailed', op, code: err.code ?? null, message: err.message });
  }
}

if (fault === 'bad-handler') {
  try {
    fuse.mount(mountpoint, options, 42);
    say({ event: 'mounted' });
  } catch (err) {
    say({ event: 'mountFailed', code: err.code ?? null, message: err.message });
  }
  process.exit(0);
}

fuse.mount(mountpoint, options, (op, req, ino, name, a, b) => {
  switch (op) {
    case OP.EXIT:
      say({ event: 'exit' });
      return;
    case OP.FORGET:
      return;
    case OP.LOOKUP:
      if (ino !== 1 || name !== 'f') return reply('lookup', () => fuse.replyErr(req, fault === 'err' ? 'ENOENT' : 2));
      // The attr fault needs the kernel to ask for the attributes again: they are not kept.
      return reply('lookup', () => fuse.replyEntry(req, attr(2), fault === 'entry' ? 'soon' : 1, fault === 'attr' ? 0 : 1));
    case OP.GETATTR:
      return reply('getattr', () => fuse.replyAttr(req, fault === 'attr' && ino === 2 ? { ino } : attr(ino), 0));
    case OP.OPEN:
      return reply('open', () => fuse.replyOpen(req, 1, fault === 'open' ? 'yes' : true, false));
    case OP.READ:
      return reply('read', () => {
        if (fault === 'data-not-array') fuse.replyData(req, undefined);
        else if (fault === 'data-not-buffer') fuse.replyData(req, [Buffer.alloc(16, 0x61), 'a']);
        else fuse.replyData(req, [Buffer.alloc(Math.max(0, Math.min(a, SIZE - b)), 0x61)]);
      });
    case OP.RELEASE:
    case OP.RELEASEDIR:
      return reply('release', () => fuse.replyErr(req, 0));
    case OP.OPENDIR:
      return reply('opendir', () => fuse.replyOpen(req, 1, false, false));
    case OP.READDIR:
      return reply('readdir', () => fuse.replyDir(req, a, ['.', '..', 'f'], fault === 'dir' ? undefined : [1, 1, 2], [DIR, DIR, FILE], b));
    default:
      return reply('other', () => fuse.replyErr(req, 38));
  }
});
say({ event: 'mounted' });
