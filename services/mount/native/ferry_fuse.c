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
 * replies may be sent from any thread). Every request gets exactly one reply; ops that would
 * change the tree are answered EROFS here without a round trip, as are statfs and xattrs.
 */
#define FUSE_USE_VERSION 26
#define _FILE_OFFSET_BITS 64
#include <errno.h>
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
  // Unmounted (or detached and the last open file closed): tell JavaScript, then let go.
  request_t *r = calloc(1, sizeof(request_t));
  if (r) {
    r->op = OP_EXIT;
    if (napi_call_threadsafe_function(s->tsfn, r, napi_tsfn_blocking) != napi_ok) free(r);
  }
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
  return NULL;
}

/* Runs on the main thread: handler(op, req, ino, name, a, b, fh). */
static void call_js(napi_env env, napi_value handler, void *context, void *data) {
  (void)context;
  request_t *r = (request_t *)data;
  if (env != NULL && handler != NULL) {
    napi_value argv[7], undefined;
    napi_get_undefined(env, &undefined);
    napi_create_int32(env, r->op, &argv[0]);
    if (r->req) napi_create_bigint_uint64(env, (uint64_t)(uintptr_t)r->req, &argv[1]);
    else argv[1] = undefined;
    napi_create_double(env, (double)r->ino, &argv[2]);
    if (r->name) napi_create_string_utf8(env, r->name, NAPI_AUTO_LENGTH, &argv[3]);
    else argv[3] = undefined;
    napi_create_double(env, (double)r->a, &argv[4]);
    napi_create_double(env, (double)r->b, &argv[5]);
    napi_create_double(env, (double)r->fh, &argv[6]);
    napi_call_function(env, undefined, handler, 7, argv, NULL);
  } else if (r->req && r->op != OP_FORGET) {
    fuse_reply_err(r->req, EIO);
  }
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

static double number_arg(napi_env env, napi_value value) {
  double d = 0;
  napi_get_value_double(env, value, &d);
  return d;
}

/* attr: [ino, mode, size, mtimeMs, nlink, uid, gid] */
static int stat_arg(napi_env env, napi_value value, struct stat *st) {
  memset(st, 0, sizeof(*st));
  double v[7] = {0};
  for (uint32_t i = 0; i < 7; i++) {
    napi_value item;
    if (napi_get_element(env, value, i, &item) != napi_ok) return -1;
    v[i] = number_arg(env, item);
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
  return 0;
}

/* mount(mountpoint, options, handler) -> session */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char mountpoint[4096], options[4096];
  size_t len;
  CHECK(napi_get_value_string_utf8(env, argv[0], mountpoint, sizeof(mountpoint), &len));
  CHECK(napi_get_value_string_utf8(env, argv[1], options, sizeof(options), &len));

  session_t *s = calloc(1, sizeof(session_t));
  if (s == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  s->mountpoint = strdup(mountpoint);
  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  fuse_opt_add_arg(&args, "ferry");
  if (options[0]) {
    fuse_opt_add_arg(&args, "-o");
    fuse_opt_add_arg(&args, options);
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

  napi_value name;
  CHECK(napi_create_string_utf8(env, "ferry_fuse", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, s, call_js, &s->tsfn));
  if (pthread_create(&s->thread, NULL, loop, s) != 0) {
    napi_release_threadsafe_function(s->tsfn, napi_tsfn_abort);
    fuse_session_destroy(s->se);
    fuse_unmount(mountpoint, s->ch);
    napi_throw_error(env, "EMOUNT", "cannot start the FUSE thread");
    return NULL;
  }
  pthread_detach(s->thread);
  napi_value external;
  CHECK(napi_create_external(env, s, NULL, NULL, &external));
  return external;
}

/* unref(session): the FUSE thread no longer keeps the process alive. */
static napi_value js_unref(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  session_t *s;
  CHECK(napi_get_value_external(env, argv[0], (void **)&s));
  napi_unref_threadsafe_function(env, s->tsfn);
  return NULL;
}

/* The arguments of a reply function: argv[0] is the request handle, `req` (the function returns
 * with a pending TypeError when it is not one). */
#define REPLY_ARGS(n)                                                \
  size_t argc = n;                                                   \
  napi_value argv[n];                                                \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));       \
  fuse_req_t req = req_arg(env, argv[0]);                            \
  if (req == NULL) return NULL

/* replyErr(req, errno) — errno positive. */
static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  fuse_reply_err(req, (int)number_arg(env, argv[1]));
  return NULL;
}

/* replyEntry(req, attr, entryTimeoutSeconds, attrTimeoutSeconds) */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  REPLY_ARGS(4);
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  if (stat_arg(env, argv[1], &e.attr) != 0) {
    fuse_reply_err(req, EIO);
    return NULL;
  }
  e.ino = e.attr.st_ino;
  e.generation = 1;
  e.entry_timeout = number_arg(env, argv[2]);
  e.attr_timeout = number_arg(env, argv[3]);
  fuse_reply_entry(req, &e);
  return NULL;
}

/* replyAttr(req, attr, attrTimeoutSeconds) */
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  REPLY_ARGS(3);
  struct stat st;
  if (stat_arg(env, argv[1], &st) != 0) {
    fuse_reply_err(req, EIO);
    return NULL;
  }
  fuse_reply_attr(req, &st, number_arg(env, argv[2]));
  return NULL;
}

/* replyOpen(req, fh, directIo, keepCache) */
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  REPLY_ARGS(4);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof(fi));
  fi.fh = (uint64_t)number_arg(env, argv[1]);
  bool direct = false, keep = false;
  napi_get_value_bool(env, argv[2], &direct);
  napi_get_value_bool(env, argv[3], &keep);
  fi.direct_io = direct ? 1 : 0;
  fi.keep_cache = keep ? 1 : 0;
  fuse_reply_open(req, &fi);
  return NULL;
}

/* replyData(req, buffers): the buffers in order, gathered by the kernel write (no copy here). */
static napi_value js_reply_data(napi_env env, napi_callback_info info) {
  REPLY_ARGS(2);
  uint32_t count = 0;
  CHECK(napi_get_array_length(env, argv[1], &count));
  struct iovec small[4];
  struct iovec *iov = count <= 4 ? small : calloc(count, sizeof(struct iovec));
  if (iov == NULL) {
    fuse_reply_err(req, ENOMEM);
    return NULL;
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value item;
    void *data = NULL;
    size_t size = 0;
    if (napi_get_element(env, argv[1], i, &item) != napi_ok || napi_get_buffer_info(env, item, &data, &size) != napi_ok) {
      if (iov != small) free(iov);
      fuse_reply_err(req, EIO);
      return NULL;
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
  size_t size = (size_t)number_arg(env, argv[1]);
  uint32_t count = 0;
  CHECK(napi_get_array_length(env, argv[2], &count));
  uint32_t start = (uint32_t)number_arg(env, argv[5]);
  char *buf = malloc(size > 0 ? size : 1);
  if (buf == NULL) {
    fuse_reply_err(req, ENOMEM);
    return NULL;
  }
  size_t used = 0;
  char name[1024];
  for (uint32_t i = start; i < count; i++) {
    napi_value item;
    size_t len;
    CHECK(napi_get_element(env, argv[2], i, &item));
    if (napi_get_value_string_utf8(env, item, name, sizeof(name), &len) != napi_ok) continue;
    struct stat st;
    memset(&st, 0, sizeof(st));
    CHECK(napi_get_element(env, argv[3], i, &item));
    st.st_ino = (ino_t)number_arg(env, item);
    CHECK(napi_get_element(env, argv[4], i, &item));
    st.st_mode = (mode_t)number_arg(env, item);
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
