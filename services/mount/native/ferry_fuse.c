/*
 * ferry_fuse: libfuse 2's low-level API for Node, as much of it as a read-only mount needs.
 *
 * Why the low-level API: the mount answers lookups with inode numbers of its own choosing, one
 * per (path, version). The kernel keeps its page cache per inode, so two versions of one path
 * that are open at once (an old handle and a new open after the path was replaced) never share
 * cached pages, and a file's pages can be kept across opens. libfuse's high-level API (what
 * fuse-native binds) assigns one inode per path name, which mixes versions in the page cache.
 *
 * How: `mount()` mounts with fuse_mount and runs fuse_session_loop on a thread of its own. Each
 * request is handed to JavaScript through a thread-safe function with an opaque request handle;
 * JavaScript answers later, from the main thread, with one of the reply functions (libfuse's
 * replies may be sent from any thread). Every request gets exactly one reply (EIO when a reply
 * cannot be made); ops that would change the tree are answered EROFS here without a round trip,
 * as are statfs and xattrs. When the loop ends the thread lets go of the thread-safe function, and
 * its finalizer (main thread) tells JavaScript OP_EXIT: from then on the thread touches nothing
 * of Node's, so the process may exit.
 */
#define FUSE_USE_VERSION 26
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <math.h>
#include <fuse_lowlevel.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>

enum op {
  OP_EXIT = 0,
  OP_LOOKUP = 1,
  OP_FORGET = 2,
  OP_GETATTR = 3,
  OP_OPEN = 4,
  OP_READ = 5,
  OP_RELEASE = 6,
  OP_OPENDIR = 7,
  OP_READDIR = 8,
  OP_RELEASEDIR = 9,
};

typedef struct {
  struct fuse_session *se;
  struct fuse_chan *ch;
  napi_threadsafe_function tsfn;
  pthread_t thread;
  char *mountpoint;
  /* The handler, kept to tell it OP_EXIT once the thread-safe function is gone. */
  napi_ref handler;
  /* Main thread only: the thread-safe function is finalized (the FUSE thread let go of it). */
  bool done;
  /* The mount failed after the thread-safe function was made: its finalizer frees the session. */
  bool failed;
} session_t;

typedef struct {
  int op;
  fuse_req_t req;
  uint64_t ino;
  char *name;
  uint64_t a;
  uint64_t b;
  uint64_t fh;
} request_t;

#define CHECK(call)                                                                  \
  do {                                                                               \
    if ((call) != napi_ok) {                                                         \
      napi_throw_error(env, NULL, "ferry_fuse: N-API call failed: " #call);          \
      return NULL;                                                                   \
    }                                                                                \
  } while (0)

static void dispatch_to(session_t *s, fuse_req_t req, int op, uint64_t ino, const char *name, uint64_t a, uint64_t b, uint64_t fh) {
  request_t *r = calloc(1, sizeof(request_t));
  if (r == NULL) {
    if (req) fuse_reply_err(req, ENOMEM);
    return;
  }
  r->op = op;
  r->req = req;
  r->ino = ino;
  r->name = name ? strdup(name) : NULL;
  if (name && r->name == NULL) {
    free(r);
    if (req) fuse_reply_err(req, ENOMEM);
    return;
  }
  r->a = a;
  r->b = b;
  r->fh = fh;
  if (napi_call_threadsafe_function(s->tsfn, r, napi_tsfn_nonblocking) != napi_ok) {
    free(r->name);
    free(r);
    if (req && op != OP_FORGET) fuse_reply_err(req, EIO);
  }
}

static void dispatch(fuse_req_t req, int op, uint64_t ino, const char *name, uint64_t a, uint64_t b, uint64_t fh) {
  dispatch_to((session_t *)fuse_req_userdata(req), req, op, ino, name, a, b, fh);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) { dispatch(req, OP_LOOKUP, parent, name, 0, 0, 0); }

static void ll_forget(fuse_req_t req, fuse_ino_t ino, unsigned long nlookup) {
  // Nothing to answer: the count goes to JavaScript, which drops the inode at zero.
  session_t *s = (session_t *)fuse_req_userdata(req);
  fuse_reply_none(req);
  dispatch_to(s, NULL, OP_FORGET, ino, NULL, nlookup, 0, 0);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  dispatch(req, OP_GETATTR, ino, NULL, 0, 0, 0);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { dispatch(req, OP_OPEN, ino, NULL, (uint64_t)fi->flags, 0, 0); }

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  dispatch(req, OP_READ, ino, NULL, (uint64_t)size, (uint64_t)off, fi->fh);
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { dispatch(req, OP_RELEASE, ino, NULL, 0, 0, fi->fh); }

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { dispatch(req, OP_OPENDIR, ino, NULL, (uint64_t)fi->flags, 0, 0); }

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  dispatch(req, OP_READDIR, ino, NULL, (uint64_t)size, (uint64_t)off, fi->fh);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { dispatch(req, OP_RELEASEDIR, ino, NULL, 0, 0, fi->fh); }

static void ll_statfs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  struct statvfs st;
  memset(&st, 0, sizeof(st));
  st.f_bsize = 4096;
  st.f_frsize = 4096;
  st.f_namemax = 255;
  st.f_flag = ST_RDONLY;
  fuse_reply_statfs(req, &st);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  (void)ino, (void)name, (void)size;
  fuse_reply_err(req, ENODATA);
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  (void)ino;
  if (size == 0) fuse_reply_xattr(req, 0);
  else fuse_reply_buf(req, NULL, 0);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  (void)ino, (void)attr, (void)to_set, (void)fi;
  fuse_reply_err(req, EROFS);
}
static void ll_mknod(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, dev_t d) {
  (void)p, (void)n, (void)m, (void)d;
  fuse_reply_err(req, EROFS);
}
static void ll_mkdir(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m) {
  (void)p, (void)n, (void)m;
  fuse_reply_err(req, EROFS);
}
static void ll_unlink(fuse_req_t req, fuse_ino_t p, const char *n) {
  (void)p, (void)n;
  fuse_reply_err(req, EROFS);
}
static void ll_symlink(fuse_req_t req, const char *l, fuse_ino_t p, const char *n) {
  (void)l, (void)p, (void)n;
  fuse_reply_err(req, EROFS);
}
static void ll_rename(fuse_req_t req, fuse_ino_t p, const char *n, fuse_ino_t np, const char *nn) {
  (void)p, (void)n, (void)np, (void)nn;
  fuse_reply_err(req, EROFS);
}
static void ll_link(fuse_req_t req, fuse_ino_t i, fuse_ino_t np, const char *nn) {
  (void)i, (void)np, (void)nn;
  fuse_reply_err(req, EROFS);
}
static void ll_write(fuse_req_t req, fuse_ino_t i, const char *b, size_t s, off_t o, struct fuse_file_info *fi) {
  (void)i, (void)b, (void)s, (void)o, (void)fi;
  fuse_reply_err(req, EROFS);
}
static void ll_create(fuse_req_t req, fuse_ino_t p, const char *n, mode_t m, struct fuse_file_info *fi) {
  (void)p, (void)n, (void)m, (void)fi;
  fuse_reply_err(req, EROFS);
}
static void ll_setxattr(fuse_req_t req, fuse_ino_t i, const char *n, const char *v, size_t s, int f) {
  (void)i, (void)n, (void)v, (void)s, (void)f;
  fuse_reply_err(req, EROFS);
}
static void ll_removexattr(fuse_req_t req, fuse_ino_t i, const char *n) {
  (void)i, (void)n;
  fuse_reply_err(req, EROFS);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = ll_lookup,
    .forget = ll_forget,
    .getattr = ll_getattr,
    .setattr = ll_setattr,
    .mknod = ll_mknod,
    .mkdir = ll_mkdir,
    .unlink = ll_unlink,
    .rmdir = ll_unlink,
    .symlink = ll_symlink,
    .rename = ll_rename,
    .link = ll_link,
    .open = ll_open,
    .read = ll_read,
    .write = ll_write,
    .release = ll_release,
    .opendir = ll_opendir,
    .readdir = ll_readdir,
    .releasedir = ll_releasedir,
    .statfs = ll_statfs,
    .setxattr = ll_setxattr,
    .getxattr = ll_getxattr,
    .listxattr = ll_listxattr,
    .removexattr = ll_removexattr,
    .create = ll_create,
};

static void *loop(void *data) {
  session_t *s = (session_t *)data;
  fuse_session_loop(s->se);
  // Unmounted (or detached and the last open file closed). JavaScript hears of it from the
  // finalizer, once this thread is done with the thread-safe function: a process that exited on
  // an earlier signal could tear Node down while this thread still used it.
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  return NULL;
}

/* The thread-safe function is gone (main thread): tell the handler OP_EXIT. */
static void tsfn_finalized(napi_env env, void *data, void *hint) {
  (void)hint;
  session_t *s = (session_t *)data;
  if (s->failed) {
    free(s);
    return;
  }
  s->done = true;
  if (s->handler == NULL) return;
  napi_value handler, undefined, argv[7];
  if (napi_get_reference_value(env, s->handler, &handler) == napi_ok && handler != NULL && napi_get_undefined(env, &undefined) == napi_ok &&
      napi_create_int32(env, OP_EXIT, &argv[0]) == napi_ok) {
    for (int i = 1; i < 7; i++) argv[i] = undefined;
    napi_call_function(env, undefined, handler, 7, argv, NULL);
  }
  napi_delete_reference(env, s->handler);
  s->handler = NULL;
}

/* Runs on the main thread: handler(op, req, ino, name, a, b, fh). A request whose arguments cannot
 * be made is answered EIO here. A handler that throws is a bug of the handler: whether it answered
 * before throwing cannot be known here, so the JavaScript side catches its own exceptions. */
static void call_js(napi_env env, napi_value handler, void *context, void *data) {
  (void)context;
  request_t *r = (request_t *)data;
  bool made = false;
  napi_value argv[7], undefined;
  if (env != NULL && handler != NULL) {
    made = napi_get_undefined(env, &undefined) == napi_ok && napi_create_int32(env, r->op, &argv[0]) == napi_ok &&
           napi_create_double(env, (double)r->ino, &argv[2]) == napi_ok && napi_create_double(env, (double)r->a, &argv[4]) == napi_ok &&
           napi_create_double(env, (double)r->b, &argv[5]) == napi_ok && napi_create_double(env, (double)r->fh, &argv[6]) == napi_ok;
    if (made) {
      argv[1] = argv[3] = undefined;
      if (r->req) made = napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)r->req, &argv[1]) == napi_ok;
      if (made && r->name) made = napi_create_string_utf8(env, r->name, NAPI_AUTO_LENGTH, &argv[3]) == napi_ok;
    }
  }
  if (made) napi_call_function(env, undefined, handler, 7, argv, NULL);
  else if (r->req) fuse_reply_err(r->req, EIO); // forgets carry no request: nothing to answer
  free(r->name);
  free(r);
}

static fuse_req_t req_arg(napi_env env, napi_value value) {
  uint64_t raw = 0;
  bool lossless = false;
  if (napi_get_value_bigint_uint64(env, value, &raw, &lossless) != napi_ok || raw == 0) {
    napi_throw_type_error(env, NULL, "ferry_fuse: not a request handle");
    return NULL;
  }
  return (fuse_req_t)(uintptr_t)raw;
}

/* A finite number argument; false when it is not one (nothing is thrown). */
static bool number_arg(napi_env env, napi_value value, double *out) { return napi_get_value_double(env, value, out) == napi_ok && isfinite(*out); }

/* attr: [ino, mode, size, mtimeMs, nlink, uid, gid]; false unless an array of seven numbers. */
static bool stat_arg(napi_env env, napi_value value, struct stat *st) {
  memset(st, 0, sizeof(*st));
  double v[7] = {0};
  for (uint32_t i = 0; i < 7; i++) {
    napi_value item;
    if (napi_get_element(env, value, i, &item) != napi_ok || !number_arg(env, item, &v[i])) return false;
  }
  st->st_ino = (ino_t)v[0];
  st->st_mode = (mode_t)v[1];
  st->st_size = (off_t)v[2];
  int64_t ms = (int64_t)v[3];
  st->st_mtim.tv_sec = ms / 1000;
  st->st_mtim.tv_nsec = (ms % 1000) * 1000000;
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
  st->st_nlink = (nlink_t)v[4];
  st->st_uid = (uid_t)v[5];
  st->st_gid = (gid_t)v[6];
  st->st_blksize = 128 * 1024;
  st->st_blocks = (st->st_size + 511) / 512;
  return true;
}

/* A reply that cannot be made (an argument of the wrong type, no memory) still answers the kernel,
 * with `err`, so the system call waiting on it fails at once instead of hanging; then JavaScript
 * gets an exception (code EREPLY) saying which reply and why. */
static napi_value reply_failed(napi_env env, fuse_req_t req, int err, const char *why) {
  fuse_reply_err(req, err);
  // One kind of exception whatever went wrong (N-API may have thrown a TypeError of its own).
  bool pending = false;
  napi_value dropped;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &dropped);
  napi_throw_error(env, "EREPLY", why);
  return NULL;
}

/* mount(mountpoint, options, handler) -> session. Whatever fails after fuse_mount unmounts and
 * frees what was made, so a failed mount leaves neither a mount nor memory behind. */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char mountpoint[4096], options[4096];
  size_t len;
  CHECK(napi_get_value_string_utf8(env, argv[0], mountpoint, sizeof(mountpoint), &len));
  CHECK(napi_get_value_string_utf8(env, argv[1], options, sizeof(options), &len));
  napi_value name;
  CHECK(napi_create_string_utf8(env, "ferry_fuse", NAPI_AUTO_LENGTH, &name));

  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  session_t *s = calloc(1, sizeof(session_t));
  if (s == NULL || (s->mountpoint = strdup(mountpoint)) == NULL || fuse_opt_add_arg(&args, "ferry") != 0 ||
      (options[0] && (fuse_opt_add_arg(&args, "-o") != 0 || fuse_opt_add_arg(&args, options) != 0))) {
    fuse_opt_free_args(&args);
    if (s) free(s->mountpoint);
    free(s);
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  s->ch = fuse_mount(mountpoint, &args);
  if (s->ch == NULL) {
    fuse_opt_free_args(&args);
    free(s->mountpoint);
    free(s);
    napi_throw_error(env, "EMOUNT", "fuse_mount failed (libfuse printed why on stderr)");
    return NULL;
  }
  s->se = fuse_lowlevel_new(&args, &ops, sizeof(ops), s);
  fuse_opt_free_args(&args);
  if (s->se == NULL) {
    fuse_unmount(mountpoint, s->ch);
    free(s->mountpoint);
    free(s);
    napi_throw_error(env, "EMOUNT", "fuse_lowlevel_new failed");
    return NULL;
  }
  fuse_session_add_chan(s->se, s->ch);

  // The handle is made before the thread starts: past that point nothing can fail.
  const char *failed = NULL;
  bool made_tsfn = false;
  napi_value external;
  if (napi_create_external(env, s, NULL, NULL, &external) != napi_ok) {
    failed = "cannot make the session handle";
  } else if (napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, s, tsfn_finalized, s, call_js, &s->tsfn) != napi_ok) {
    failed = "cannot make the thread-safe function (is the handler a function?)";
  } else {
    made_tsfn = true;
    if (napi_create_reference(env, argv[2], 1, &s->handler) != napi_ok) {
      s->handler = NULL;
      failed = "cannot keep a reference to the handler";
    } else if (pthread_create(&s->thread, NULL, loop, s) != 0) {
      failed = "cannot start the FUSE thread";
    }
  }
  if (failed == NULL) {
    pthread_detach(s->thread);
    return external;
  }
  // The session owns its channel: take it back first, so that fuse_unmount closes and frees it
  // (fuse_session_destroy would free it too). The external made above is never handed out.
  fuse_session_remove_chan(s->ch);
  fuse_session_destroy(s->se);
  fuse_unmount(s->mountpoint, s->ch);
  free(s->mountpoint);
  if (s->handler) napi_delete_reference(env, s->handler);
  if (made_tsfn) {
    // Its finalizer runs later, on this thread, and frees the session.
    s->failed = true;
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
  } else {
    free(s);
  }
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) != napi_ok || !pending) napi_throw_error(env, "EMOUNT", failed);
  return NULL;
}

/* unref(session): the FUSE thread no longer keeps the process alive. */
static napi_value js_unref(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  session_t *s;
  CHECK(napi_get_value_external(env, argv[0], (void **)&s));
  if (!s->done) napi_unref_threadsafe_function(env, s->tsfn); // a finalized one is freed already
  return NULL;
}

/* The arguments of a reply function: argv[0] is the request handle, `req` (the function returns
 * with a pending TypeError when it is not one: without a handle there is nothing to answer). */
#define REPLY_ARGS(n)                                                \
  size_t argc = n;                                                   \
  napi_value argv[n];                                                \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));       \
  fuse_req_t req = req_arg(env, argv[0]);                            \
  if (req == NULL) return NULL

/* replyErr(req, errno) — errno positive (0: success without data, as for release). */
static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  double err;
  if (!number_arg(env, argv[1], &err) || err < 0 || err >= 4096) return reply_failed(env, req, EIO, "replyErr: errno must be a number from 0 to 4095");
  fuse_reply_err(req, (int)err);
  return NULL;
}

/* replyEntry(req, attr, entryTimeoutSeconds, attrTimeoutSeconds) */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  REPLY_ARGS(4);
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  if (!stat_arg(env, argv[1], &e.attr) || !number_arg(env, argv[2], &e.entry_timeout) || !number_arg(env, argv[3], &e.attr_timeout))
    return reply_failed(env, req, EIO, "replyEntry: expected (req, [7 numbers], number, number)");
  e.ino = e.attr.st_ino;
  e.generation = 1;
  fuse_reply_entry(req, &e);
  return NULL;
}

/* replyAttr(req, attr, attrTimeoutSeconds) */
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  REPLY_ARGS(3);
  struct stat st;
  double timeout;
  if (!stat_arg(env, argv[1], &st) || !number_arg(env, argv[2], &timeout))
    return reply_failed(env, req, EIO, "replyAttr: expected (req, [7 numbers], number)");
  fuse_reply_attr(req, &st, timeout);
  return NULL;
}

/* replyOpen(req, fh, directIo, keepCache) */
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  REPLY_ARGS(4);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof(fi));
  double fh;
  bool direct = false, keep = false;
  if (!number_arg(env, argv[1], &fh) || fh < 0 || napi_get_value_bool(env, argv[2], &direct) != napi_ok ||
      napi_get_value_bool(env, argv[3], &keep) != napi_ok)
    return reply_failed(env, req, EIO, "replyOpen: expected (req, number, boolean, boolean)");
  fi.fh = (uint64_t)fh;
  fi.direct_io = direct ? 1 : 0;
  fi.keep_cache = keep ? 1 : 0;
  fuse_reply_open(req, &fi);
  return NULL;
}

/* replyData(req, buffers): the buffers in order, gathered by the kernel write (no copy here). */
static napi_value js_reply_data(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  uint32_t count = 0;
  if (napi_get_array_length(env, argv[1], &count) != napi_ok || count > INT32_MAX)
    return reply_failed(env, req, EIO, "replyData: expected an array of buffers");
  struct iovec small[4];
  struct iovec *iov = small;
  if (count > 4 && (iov = calloc(count, sizeof(struct iovec))) == NULL) return reply_failed(env, req, ENOMEM, "replyData: out of memory");
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    void *data = NULL;
    size_t size = 0;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok || napi_get_buffer_info(env, item, &data, &size) != napi_ok) {
      if (iov != small) free(iov);
      return reply_failed(env, req, EIO, "replyData: expected an array of buffers");
    }
    iov[i].iov_base = data;
    iov[i].iov_len = size;
  }
  fuse_reply_iov(req, iov, (int)count);
  if (iov != small) free(iov);
  return NULL;
}

/* replyDir(req, size, names, inos, modes, start): entries from index `start` that fit in `size`. */
static napi_value js_reply_dir(napi_env env, napi_callback_info info) {
  REPLY_ARGS(6);
  double size_arg, start_arg;
  uint32_t count = 0;
  // The kernel asks for at most a few pages; a size past 16 MiB is a bug, not a listing.
  if (!number_arg(env, argv[1], &size_arg) || !number_arg(env, argv[5], &start_arg) || size_arg < 0 || size_arg > (1 << 24) ||
      start_arg < 0 || napi_get_array_length(env, argv[2], &count) != napi_ok)
    return reply_failed(env, req, EIO, "replyDir: expected (req, size, names, inos, modes, start)");
  size_t size = (size_t)size_arg;
  char *buf = malloc(size > 0 ? size : 1);
  if (buf == NULL) return reply_failed(env, req, ENOMEM, "replyDir: out of memory");
  size_t used = 0;
  // A name is one segment of a path of at most 1024 bytes.
  char name[1025];
  for (uint32_t i = start_arg < count ? (uint32_t)start_arg : count; i < count; i++) {
    napi_value item;
    size_t len;
    double ino, mode;
    if (napi_get_element(env, argv[2], i, &item) != napi_ok || napi_get_value_string_utf8(env, item, name, sizeof(name), &len) != napi_ok ||
        napi_get_element(env, argv[3], i, &item) != napi_ok || !number_arg(env, item, &ino) ||
        napi_get_element(env, argv[4], i, &item) != napi_ok || !number_arg(env, item, &mode)) {
      free(buf);
      return reply_failed(env, req, EIO, "replyDir: expected names (strings), inos and modes (numbers) of one length");
    }
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_ino = (ino_t)ino;
    st.st_mode = (mode_t)mode;
    size_t need = fuse_add_direntry(req, NULL, 0, name, NULL, 0);
    if (used + need > size) break;
    fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
    used += need;
  }
  fuse_reply_buf(req, buf, used);
  free(buf);
  return NULL;
}

#define EXPORT(name, fn)                                                        \
  do {                                                                          \
    napi_value f;                                                               \
    CHECK(napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, NULL, &f));     \
    CHECK(napi_set_named_property(env, exports, name, f));                      \
  } while (0)

static napi_value init(napi_env env, napi_value exports) {
  EXPORT("mount", js_mount);
  EXPORT("unref", js_unref);
  EXPORT("replyErr", js_reply_err);
  EXPORT("replyEntry", js_reply_entry);
  EXPORT("replyAttr", js_reply_attr);
  EXPORT("replyOpen", js_reply_open);
  EXPORT("replyData", js_reply_data);
  EXPORT("replyDir", js_reply_dir);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
