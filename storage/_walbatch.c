/*
 * mobstore WAL write batching: a SQLite VFS shim that gathers the writes SQLite makes to a
 * WAL file during one commit and hands them to the operating system as one write.
 *
 * Why: SQLite writes every WAL frame as two write() calls (a 24-byte header, then the page).
 * A group commit of 64 appends dirties ~70 pages, so ~140 system calls per commit; on the
 * 2-core target VM each costs 2.5-5 us of CPU, which made the syscalls, not the fsync, most
 * of a durable COMMIT (measured: COMMIT CPU ~210 -> ~100 us for 64 appends; writer CPU per
 * durable append -21%, per session boundary -24%; docs/benchmarks.md).
 * A Python VFS cannot do this: its per-call overhead is as large as the syscall it saves.
 *
 * What it does, and why it is safe:
 *   - Only files opened with SQLITE_OPEN_WAL are batched; every other file and every other
 *     method is passed through unchanged to the default VFS ("unix").
 *   - Consecutive writes to the WAL accumulate in a private buffer. The buffer is written
 *     out, in order and before the call proceeds, on: xSync, xRead, xTruncate, xFileSize,
 *     xFileControl and xClose of that WAL file, and on a write that is not contiguous with
 *     the buffer or does not fit. There is no state shared between files or threads.
 *   - It is used only with synchronous=FULL (durability="full"), where every commit calls
 *     xSync on the WAL before it publishes the commit through the wal-index (shared
 *     memory): the buffer is on its way to the disk, and any write error is reported by
 *     that xSync, before any other connection can be told about the new frames. (With
 *     NORMAL there is no xSync before publication, so mobstore does not use the shim there.)
 *   - A crash with data still in the buffer is the same as a crash before those write()
 *     calls: the commit was not synced or published, and WAL recovery (checksums, salts)
 *     discards the incomplete transaction exactly as it would without the shim.
 *   - A failed flush returns the write's error code from the call that flushed, so SQLite
 *     sees the I/O error at (or before) the commit, as it would have seen it from xWrite.
 *
 * Loaded as a SQLite extension (entry point sqlite3_walbatch_init) through apsw's
 * Connection.load_extension; it registers the VFS "mobstore-walbatch" once per process
 * (not as the default). It is also a Python module so that setuptools can build it and
 * Python can locate it: storage/_wal_batching.py does both. The module's stack(name, base)
 * registers more instances over other VFSes (the test kit's fault-injection VFSes).
 */
#include <Python.h>
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1
#include <stdlib.h>
#include <string.h>

#define WB_VFS_NAME "mobstore-walbatch"
/* A commit of 64 appends is ~70 KiB of frames. The buffer must stay below 128 KiB: the unix
 * VFS writes `amount & 0x1ffff` bytes per call (SQLite itself never writes more than a page
 * at once), so a larger write would come back short, as SQLITE_FULL. */
#define WB_CAPACITY (120 * 1024)
#if WB_CAPACITY > 0x1ffff
#error "WB_CAPACITY must be below 128 KiB"
#endif

#if defined(_MSC_VER)
#define WB_EXPORT __declspec(dllexport)
#else
#define WB_EXPORT
#endif

typedef struct WbFile {
  sqlite3_file base;   /* pMethods points at wb_methods */
  sqlite3_file *real;  /* the default VFS's file, allocated right after this struct */
  int is_wal;
  char *buf;           /* WAL only: pending bytes, written at offset `start` */
  int used;
  sqlite3_int64 start;
} WbFile;

static sqlite3_vfs wb_vfs; /* the default instance, over SQLite's default VFS */
/* One method table per io-methods version: a shim file offers exactly the methods of the
 * file under it (a version 1 file has no shared memory, so WAL needs version 2 or more). */
static sqlite3_io_methods wb_methods[3];

/* The VFS under an instance (the default VFS, or the base named to stack()). */
#define ROOT(v) ((sqlite3_vfs *)(v)->pAppData)

#define REAL(p) (((WbFile *)(p))->real)

static int wb_flush(WbFile *f) {
  int rc = SQLITE_OK;
  if (f->used) {
    rc = f->real->pMethods->xWrite(f->real, f->buf, f->used, f->start);
    f->used = 0; /* also on failure: the caller reports it, and SQLite abandons the commit */
  }
  return rc;
}

static int wb_close(sqlite3_file *p) {
  WbFile *f = (WbFile *)p;
  int rc = wb_flush(f);
  int rc2 = f->real->pMethods->xClose(f->real);
  free(f->buf);
  f->buf = 0;
  return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *p, void *out, int amount, sqlite3_int64 offset) {
  WbFile *f = (WbFile *)p;
  int rc = wb_flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, amount, offset);
}

static int wb_write(sqlite3_file *p, const void *data, int amount, sqlite3_int64 offset) {
  WbFile *f = (WbFile *)p;
  if (!f->is_wal) return f->real->pMethods->xWrite(f->real, data, amount, offset);
  if (f->used && (offset != f->start + f->used || amount > WB_CAPACITY - f->used)) {
    int rc = wb_flush(f);
    if (rc != SQLITE_OK) return rc;
  }
  if (amount > WB_CAPACITY) return f->real->pMethods->xWrite(f->real, data, amount, offset);
  if (!f->buf) {
    f->buf = malloc(WB_CAPACITY);
    if (!f->buf) return f->real->pMethods->xWrite(f->real, data, amount, offset);
  }
  if (!f->used) f->start = offset;
  memcpy(f->buf + f->used, data, (size_t)amount);
  f->used += amount;
  return SQLITE_OK;
}

static int wb_truncate(sqlite3_file *p, sqlite3_int64 size) {
  WbFile *f = (WbFile *)p;
  int rc = wb_flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int wb_sync(sqlite3_file *p, int flags) {
  WbFile *f = (WbFile *)p;
  int rc = wb_flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wb_file_size(sqlite3_file *p, sqlite3_int64 *size) {
  WbFile *f = (WbFile *)p;
  int rc = wb_flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int wb_file_control(sqlite3_file *p, int op, void *arg) {
  WbFile *f = (WbFile *)p;
  int rc;
  if (op == SQLITE_FCNTL_VFSNAME) {
    /* Report the stack, as SQLite's own shims do: "mobstore-walbatch/unix". */
    rc = f->real->pMethods->xFileControl(f->real, op, arg);
    if (rc == SQLITE_OK && *(char **)arg) {
      *(char **)arg = sqlite3_mprintf("%s/%z", WB_VFS_NAME, *(char **)arg);
    } else if (rc == SQLITE_NOTFOUND) {
      *(char **)arg = sqlite3_mprintf("%s", WB_VFS_NAME);
      rc = SQLITE_OK;
    }
    return rc;
  }
  rc = wb_flush(f);
  return rc != SQLITE_OK ? rc : f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wb_lock(sqlite3_file *p, int level) { return REAL(p)->pMethods->xLock(REAL(p), level); }
static int wb_unlock(sqlite3_file *p, int level) { return REAL(p)->pMethods->xUnlock(REAL(p), level); }
static int wb_check_reserved(sqlite3_file *p, int *out) {
  return REAL(p)->pMethods->xCheckReservedLock(REAL(p), out);
}
static int wb_sector_size(sqlite3_file *p) { return REAL(p)->pMethods->xSectorSize(REAL(p)); }
static int wb_device_characteristics(sqlite3_file *p) {
  return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p));
}
static int wb_shm_map(sqlite3_file *p, int region, int size, int extend, void volatile **pp) {
  return REAL(p)->pMethods->xShmMap(REAL(p), region, size, extend, pp);
}
static int wb_shm_lock(sqlite3_file *p, int offset, int n, int flags) {
  return REAL(p)->pMethods->xShmLock(REAL(p), offset, n, flags);
}
static void wb_shm_barrier(sqlite3_file *p) { REAL(p)->pMethods->xShmBarrier(REAL(p)); }
static int wb_shm_unmap(sqlite3_file *p, int delete_flag) {
  return REAL(p)->pMethods->xShmUnmap(REAL(p), delete_flag);
}
static int wb_fetch(sqlite3_file *p, sqlite3_int64 offset, int amount, void **pp) {
  return REAL(p)->pMethods->xFetch(REAL(p), offset, amount, pp);
}
static int wb_unfetch(sqlite3_file *p, sqlite3_int64 offset, void *ptr) {
  return REAL(p)->pMethods->xUnfetch(REAL(p), offset, ptr);
}

static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *p, int flags, int *out_flags) {
  WbFile *f = (WbFile *)p;
  int rc, version;
  memset(f, 0, sizeof(WbFile));
  f->real = (sqlite3_file *)&f[1];
  f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
  rc = ROOT(vfs)->xOpen(ROOT(vfs), name, f->real, flags, out_flags);
  /* SQLite calls xClose only if pMethods is set, so set it exactly when the real file is. */
  if (!f->real->pMethods) {
    p->pMethods = 0;
    return rc;
  }
  version = f->real->pMethods->iVersion;
  p->pMethods = &wb_methods[(version < 1 ? 1 : version > 3 ? 3 : version) - 1];
  return rc;
}

static int wb_delete(sqlite3_vfs *v, const char *n, int sync) { return ROOT(v)->xDelete(ROOT(v), n, sync); }
static int wb_access(sqlite3_vfs *v, const char *n, int flags, int *out) {
  return ROOT(v)->xAccess(ROOT(v), n, flags, out);
}
static int wb_full_pathname(sqlite3_vfs *v, const char *n, int size, char *out) {
  return ROOT(v)->xFullPathname(ROOT(v), n, size, out);
}
static void *wb_dl_open(sqlite3_vfs *v, const char *n) { return ROOT(v)->xDlOpen(ROOT(v), n); }
static void wb_dl_error(sqlite3_vfs *v, int n, char *msg) { ROOT(v)->xDlError(ROOT(v), n, msg); }
static void (*wb_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void) {
  return ROOT(v)->xDlSym(ROOT(v), h, sym);
}
static void wb_dl_close(sqlite3_vfs *v, void *h) { ROOT(v)->xDlClose(ROOT(v), h); }
static int wb_randomness(sqlite3_vfs *v, int n, char *out) { return ROOT(v)->xRandomness(ROOT(v), n, out); }
static int wb_sleep(sqlite3_vfs *v, int us) { return ROOT(v)->xSleep(ROOT(v), us); }
static int wb_current_time(sqlite3_vfs *v, double *t) { return ROOT(v)->xCurrentTime(ROOT(v), t); }
static int wb_last_error(sqlite3_vfs *v, int n, char *msg) { return ROOT(v)->xGetLastError(ROOT(v), n, msg); }
static int wb_current_time64(sqlite3_vfs *v, sqlite3_int64 *t) {
  return ROOT(v)->xCurrentTimeInt64(ROOT(v), t);
}

static void wb_init_methods(void) {
  int i;
  for (i = 0; i < 3; i++) {
    sqlite3_io_methods *m = &wb_methods[i];
    memset(m, 0, sizeof(*m));
    m->iVersion = i + 1;
    m->xClose = wb_close;
    m->xRead = wb_read;
    m->xWrite = wb_write;
    m->xTruncate = wb_truncate;
    m->xSync = wb_sync;
    m->xFileSize = wb_file_size;
    m->xLock = wb_lock;
    m->xUnlock = wb_unlock;
    m->xCheckReservedLock = wb_check_reserved;
    m->xFileControl = wb_file_control;
    m->xSectorSize = wb_sector_size;
    m->xDeviceCharacteristics = wb_device_characteristics;
    if (i >= 1) {
      m->xShmMap = wb_shm_map;
      m->xShmLock = wb_shm_lock;
      m->xShmBarrier = wb_shm_barrier;
      m->xShmUnmap = wb_shm_unmap;
    }
    if (i >= 2) {
      m->xFetch = wb_fetch;
      m->xUnfetch = wb_unfetch;
    }
  }
}

/* Fill `v` as a shim instance named `name` over `root`. */
static void wb_fill(sqlite3_vfs *v, const char *name, sqlite3_vfs *root) {
  memset(v, 0, sizeof(*v));
  v->iVersion = 2;
  v->szOsFile = (int)sizeof(WbFile) + root->szOsFile;
  v->mxPathname = root->mxPathname;
  v->zName = name;
  v->pAppData = root;
  v->xOpen = wb_open;
  v->xDelete = wb_delete;
  v->xAccess = wb_access;
  v->xFullPathname = wb_full_pathname;
  v->xDlOpen = wb_dl_open;
  v->xDlError = wb_dl_error;
  v->xDlSym = wb_dl_sym;
  v->xDlClose = wb_dl_close;
  v->xRandomness = wb_randomness;
  v->xSleep = wb_sleep;
  v->xCurrentTime = wb_current_time;
  v->xGetLastError = wb_last_error;
  v->xCurrentTimeInt64 = wb_current_time64;
}

WB_EXPORT int sqlite3_walbatch_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  int rc;
  sqlite3_vfs *root;
  SQLITE_EXTENSION_INIT2(api);
  (void)db;
  if (sqlite3_vfs_find(WB_VFS_NAME)) return SQLITE_OK_LOAD_PERMANENTLY; /* already registered */
  root = sqlite3_vfs_find(0);
  if (!root || root->iVersion < 2) {
    *err = sqlite3_mprintf("mobstore-walbatch: the default VFS is missing or too old");
    return SQLITE_ERROR;
  }
  wb_init_methods();
  wb_fill(&wb_vfs, WB_VFS_NAME, root);
  rc = sqlite3_vfs_register(&wb_vfs, 0);
  return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}

/* stack(name, base): register another instance of the shim, named `name`, over the VFS
 * registered as `base` (the fault-injection VFSes of mobstore.actors.testing, so that crash
 * tests cover the shim). Needs sqlite3_walbatch_init to have run (it sets the API table).
 * unstack(name) unregisters and frees it; close every connection that uses it first. */
typedef struct WbStacked {
  sqlite3_vfs vfs;
  char name[1]; /* the rest of the allocation */
} WbStacked;

static PyObject *wb_py_stack(PyObject *self, PyObject *args) {
  const char *name, *base;
  sqlite3_vfs *root;
  WbStacked *st;
  size_t n;
  (void)self;
  if (!PyArg_ParseTuple(args, "ss", &name, &base)) return NULL;
  if (!sqlite3_api || !wb_vfs.zName) {
    PyErr_SetString(PyExc_RuntimeError, "the SQLite extension is not loaded yet (sqlite3_walbatch_init)");
    return NULL;
  }
  if (sqlite3_vfs_find(name)) {
    PyErr_Format(PyExc_ValueError, "a VFS named %R is already registered", PyTuple_GET_ITEM(args, 0));
    return NULL;
  }
  root = sqlite3_vfs_find(base);
  if (!root || root->iVersion < 2) {
    PyErr_Format(PyExc_LookupError, "no VFS named %R (version 2 or later) is registered", PyTuple_GET_ITEM(args, 1));
    return NULL;
  }
  n = strlen(name);
  st = (WbStacked *)malloc(sizeof(WbStacked) + n);
  if (!st) return PyErr_NoMemory();
  memcpy(st->name, name, n + 1);
  wb_fill(&st->vfs, st->name, root);
  if (sqlite3_vfs_register(&st->vfs, 0) != SQLITE_OK) {
    free(st);
    PyErr_SetString(PyExc_RuntimeError, "sqlite3_vfs_register failed");
    return NULL;
  }
  Py_RETURN_NONE;
}

static PyObject *wb_py_unstack(PyObject *self, PyObject *args) {
  const char *name;
  sqlite3_vfs *v;
  (void)self;
  if (!PyArg_ParseTuple(args, "s", &name)) return NULL;
  v = sqlite3_api ? sqlite3_vfs_find(name) : 0;
  if (!v || v->xOpen != wb_open || v == &wb_vfs) {
    PyErr_Format(PyExc_LookupError, "no stacked mobstore-walbatch VFS named %R", PyTuple_GET_ITEM(args, 0));
    return NULL;
  }
  sqlite3_vfs_unregister(v);
  free(v); /* the WbStacked that starts with it */
  Py_RETURN_NONE;
}

static PyMethodDef wb_py_methods[] = {
    {"stack", wb_py_stack, METH_VARARGS, "stack(name, base): register the shim as `name` over the VFS `base`."},
    {"unstack", wb_py_unstack, METH_VARARGS, "unstack(name): unregister a VFS made by stack()."},
    {NULL, NULL, 0, NULL}};

/* The Python side of the file: a module with stack() and unstack() only, so that setuptools
 * builds this file as an extension and importlib can say where it was installed. */
static struct PyModuleDef wb_module = {
    PyModuleDef_HEAD_INIT, "_walbatch",
    "SQLite VFS shim (a SQLite extension, entry point sqlite3_walbatch_init); see _wal_batching.py",
    -1, wb_py_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__walbatch(void) { return PyModule_Create(&wb_module); }
