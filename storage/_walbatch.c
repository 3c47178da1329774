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
 * (not as the default). It is also an (empty) Python module so that setuptools can build it
 * and Python can locate it: storage/_wal_batching.py does both.
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

static sqlite3_vfs wb_vfs;
static sqlite3_vfs *wb_root;
static sqlite3_io_methods wb_methods;

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
  int rc;
  (void)vfs;
  memset(f, 0, sizeof(WbFile));
  f->real = (sqlite3_file *)&f[1];
  f->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
  rc = wb_root->xOpen(wb_root, name, f->real, flags, out_flags);
  /* SQLite calls xClose only if pMethods is set, so set it exactly when the real file is. */
  p->pMethods = f->real->pMethods ? &wb_methods : 0;
  return rc;
}

static int wb_delete(sqlite3_vfs *v, const char *n, int sync) { (void)v; return wb_root->xDelete(wb_root, n, sync); }
static int wb_access(sqlite3_vfs *v, const char *n, int flags, int *out) {
  (void)v;
  return wb_root->xAccess(wb_root, n, flags, out);
}
static int wb_full_pathname(sqlite3_vfs *v, const char *n, int size, char *out) {
  (void)v;
  return wb_root->xFullPathname(wb_root, n, size, out);
}
static void *wb_dl_open(sqlite3_vfs *v, const char *n) { (void)v; return wb_root->xDlOpen(wb_root, n); }
static void wb_dl_error(sqlite3_vfs *v, int n, char *msg) { (void)v; wb_root->xDlError(wb_root, n, msg); }
static void (*wb_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void) {
  (void)v;
  return wb_root->xDlSym(wb_root, h, sym);
}
static void wb_dl_close(sqlite3_vfs *v, void *h) { (void)v; wb_root->xDlClose(wb_root, h); }
static int wb_randomness(sqlite3_vfs *v, int n, char *out) { (void)v; return wb_root->xRandomness(wb_root, n, out); }
static int wb_sleep(sqlite3_vfs *v, int us) { (void)v; return wb_root->xSleep(wb_root, us); }
static int wb_current_time(sqlite3_vfs *v, double *t) { (void)v; return wb_root->xCurrentTime(wb_root, t); }
static int wb_last_error(sqlite3_vfs *v, int n, char *msg) { (void)v; return wb_root->xGetLastError(wb_root, n, msg); }
static int wb_current_time64(sqlite3_vfs *v, sqlite3_int64 *t) {
  (void)v;
  return wb_root->xCurrentTimeInt64(wb_root, t);
}

WB_EXPORT int sqlite3_walbatch_init(sqlite3 *db, char **err, const sqlite3_api_routines *api) {
  int rc;
  SQLITE_EXTENSION_INIT2(api);
  (void)db;
  if (sqlite3_vfs_find(WB_VFS_NAME)) return SQLITE_OK_LOAD_PERMANENTLY; /* already registered */
  wb_root = sqlite3_vfs_find(0);
  if (!wb_root || wb_root->iVersion < 2) {
    *err = sqlite3_mprintf("mobstore-walbatch: the default VFS is missing or too old");
    return SQLITE_ERROR;
  }
  wb_methods.iVersion = 3;
  wb_methods.xClose = wb_close;
  wb_methods.xRead = wb_read;
  wb_methods.xWrite = wb_write;
  wb_methods.xTruncate = wb_truncate;
  wb_methods.xSync = wb_sync;
  wb_methods.xFileSize = wb_file_size;
  wb_methods.xLock = wb_lock;
  wb_methods.xUnlock = wb_unlock;
  wb_methods.xCheckReservedLock = wb_check_reserved;
  wb_methods.xFileControl = wb_file_control;
  wb_methods.xSectorSize = wb_sector_size;
  wb_methods.xDeviceCharacteristics = wb_device_characteristics;
  wb_methods.xShmMap = wb_shm_map;
  wb_methods.xShmLock = wb_shm_lock;
  wb_methods.xShmBarrier = wb_shm_barrier;
  wb_methods.xShmUnmap = wb_shm_unmap;
  wb_methods.xFetch = wb_fetch;
  wb_methods.xUnfetch = wb_unfetch;
  memset(&wb_vfs, 0, sizeof(wb_vfs));
  wb_vfs.iVersion = 2;
  wb_vfs.szOsFile = (int)sizeof(WbFile) + wb_root->szOsFile;
  wb_vfs.mxPathname = wb_root->mxPathname;
  wb_vfs.zName = WB_VFS_NAME;
  wb_vfs.xOpen = wb_open;
  wb_vfs.xDelete = wb_delete;
  wb_vfs.xAccess = wb_access;
  wb_vfs.xFullPathname = wb_full_pathname;
  wb_vfs.xDlOpen = wb_dl_open;
  wb_vfs.xDlError = wb_dl_error;
  wb_vfs.xDlSym = wb_dl_sym;
  wb_vfs.xDlClose = wb_dl_close;
  wb_vfs.xRandomness = wb_randomness;
  wb_vfs.xSleep = wb_sleep;
  wb_vfs.xCurrentTime = wb_current_time;
  wb_vfs.xGetLastError = wb_last_error;
  wb_vfs.xCurrentTimeInt64 = wb_current_time64;
  rc = sqlite3_vfs_register(&wb_vfs, 0);
  return rc == SQLITE_OK ? SQLITE_OK_LOAD_PERMANENTLY : rc;
}

/* The Python side of the file: an empty module, so that setuptools builds this file as an
 * extension and importlib can say where it was installed. */
static struct PyModuleDef wb_module = {
    PyModuleDef_HEAD_INIT, "_walbatch",
    "SQLite VFS shim (a SQLite extension, entry point sqlite3_walbatch_init); see _wal_batching.py",
    -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__walbatch(void) { return PyModule_Create(&wb_module); }
