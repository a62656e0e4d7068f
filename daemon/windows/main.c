/*
 * mmapiod.exe: the Windows daemon's command line and wiring (README,
 * "Windows"). The named-pipe server (transport/windows/pipeserver) is the
 * loop; the requests are winops'. Stops on Ctrl-C, Ctrl-Break, the
 * console closing, or its stop event (stop_event).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <windows.h>
#include <sddl.h>
#include <shlobj.h>
#include <knownfolders.h>

#include "dataroot.h"
#include "log.h"
#include "logfile.h"
#include "mmapio.h"
#include "pipeserver.h"
#include "sidmap.h"
#include "beneath.h"
#include "winops.h"
#include "winwatch.h"
#include "wire.h"

#define DEFAULT_PIPE "\\\\.\\pipe\\mmapio"
#define SERVICE_NAME L"mmapiod"

/* The exit status when the daemon cannot start (a service's
 * dwServiceSpecificExitCode too; README, "Windows"). */
enum {
    EXIT_FAILED = 1, /* cannot serve: the pipe taken, no stop event, ... */
    EXIT_USAGE = 2,  /* a bad option */
    EXIT_ROOT = 3,   /* the data root cannot be made or opened, or is refused */
    EXIT_LOG = 4,    /* the log cannot be opened */
};

static struct pipeserver *server;
/* The stop event while serving: the service's STOP and SHUTDOWN set it,
 * so they stop the daemon by the path its event does. */
static HANDLE stop_handle;
static SRWLOCK stop_lock = SRWLOCK_INIT;
static volatile LONG stop_early; /* asked before the event was made */

/* "Local\mmapiod-stop-NAME" for \\.\pipe\NAME ('\\' in NAME as '_'): set, it
 * stops the daemon, as SIGTERM does on Linux. Only the daemon's account,
 * SYSTEM and administrators may open it. */
#define STOP_SDDL L"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;OW)"

static void CALLBACK on_stop_event(void *arg, BOOLEAN timed_out)
{
    (void)arg;
    (void)timed_out;
    if (server)
        ps_stop(server);
}

/* The stop event, or NULL when it cannot be made (or someone has it). */
static HANDLE stop_event(const char *pipe)
{
    char name[300];
    int n = snprintf(name, sizeof(name), "Local\\mmapiod-stop-%s", pipe + 9);
    if (n < 0 || (size_t)n >= sizeof(name))
        return NULL;
    for (char *p = name + 6; *p; p++)
        if (*p == '\\')
            *p = '_';
    SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa), .bInheritHandle = FALSE};
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(STOP_SDDL, SDDL_REVISION_1,
            &sa.lpSecurityDescriptor, NULL))
        return NULL;
    HANDLE ev = CreateEventA(&sa, TRUE, FALSE, name);
    DWORD err = GetLastError();
    LocalFree(sa.lpSecurityDescriptor);
    if (ev && err == ERROR_ALREADY_EXISTS) {
        CloseHandle(ev); /* made by someone else: not ours to trust */
        return NULL;
    }
    return ev;
}

static BOOL WINAPI on_console(DWORD what)
{
    if (what == CTRL_C_EVENT || what == CTRL_BREAK_EVENT || what == CTRL_CLOSE_EVENT ||
        what == CTRL_SHUTDOWN_EVENT) {
        if (server)
            ps_stop(server);
        return TRUE;
    }
    return FALSE;
}

/* The transport's side of winops_port. */
static int port_send(void *conn, const uint8_t *pb, size_t len, const HANDLE *h,
                     const DWORD *access, unsigned n)
{
    return ps_send(conn, pb, len, h, access, n);
}

static void port_send_event(void *conn, const uint8_t *pb, size_t len)
{
    (void)ps_send_event(conn, pb, len); /* a gone connection hears nothing */
}

static void port_close(void *conn)
{
    ps_close_when_sent(conn);
}

static void port_admitted(void *conn)
{
    ps_admit(conn);
}

static HANDLE port_pull(void *conn, uint64_t value)
{
    return ps_pull(conn, value);
}

static void port_post(void (*fn)(void *), void *arg)
{
    if (server) /* else stopping: the result is dropped with the process */
        ps_post(server, fn, arg);
}

static void *on_open(void *arg, struct ps_conn *c)
{
    return winops_session_new(arg, c, ps_pipe(c));
}

static void on_message(void *session, const uint8_t *pb, size_t len,
                       const uint64_t *handles, unsigned n_handles)
{
    winops_request(session, pb, len, handles, n_handles);
}

static void on_close(void *session)
{
    winops_session_end(session);
}

static void usage(FILE *out)
{
    fprintf(out,
        "Usage: mmapiod [--socket \\\\.\\pipe\\NAME] [--root DIR] [--max_frame N]\n"
        "               [--max_map_size N] [--max_mappings N] [--max_clients N]\n"
        "               [--max_clients_per_uid N] [--max_events N]\n"
        "               [--hello_timeout_ms N] [--verbose]\n"
        "               [--log FILE] [--log_max_bytes N] [--service]\n"
        "       mmapiod --help | --version\n"
        "\n"
        "Serves shared memory mappings to local processes over a named pipe\n"
        "(default " DEFAULT_PIPE "); file paths are beneath the data root\n"
        "(default %%LOCALAPPDATA%%\\mmapio; a service's %%ProgramData%%\\mmapio).\n"
        "Stays in the foreground, logs to\n"
        "stderr (or to --log FILE, moved to FILE.1 at --log_max_bytes, default\n"
        "%u), stops on Ctrl-C, Ctrl-Break or when its event\n"
        "Local\\mmapiod-stop-NAME is set. --service: run by the service\n"
        "control manager (the service's binPath carries it; README, \"Windows\");\n"
        "it logs to --log FILE, or to ROOT\\.mmapiod\\" LOGFILE_NAME ", and what stops\n"
        "its start to the Event Log too. Exit status: 2 a bad option, 3 the data\n"
        "root, 4 the log, 1 otherwise.\n",
        LOGFILE_DEFAULT_BYTES);
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* An error that stops the start: to the log (stderr until it is open),
 * and as a service to the Event Log too, where an operator looks when a
 * service does not start (an unregistered source: Windows shows the text
 * beside a note that the source has no message file). */
static void start_error(bool service, const char *fmt, ...)
    __attribute__((format(__MINGW_PRINTF_FORMAT, 2, 3)));

static void start_error(bool service, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    log_err("%s", msg);
    WCHAR w[1024];
    HANDLE src = service ? RegisterEventSourceW(NULL, SERVICE_NAME) : NULL;
    if (!src)
        return;
    if (MultiByteToWideChar(CP_UTF8, 0, msg, -1, w, 1024) > 0) {
        LPCWSTR lines[1] = {w};
        ReportEventW(src, EVENTLOG_ERROR_TYPE, 0, 1, NULL, 1, 0, lines, NULL);
    }
    DeregisterEventSource(src);
}

/* The default data root in buf: a service's %ProgramData%\mmapio (host
 * wide, not its account's profile), a console's %LOCALAPPDATA%\mmapio.
 * False when the folder above is not known. */
static bool default_root(char *buf, size_t size, bool service)
{
    if (!service) {
        const char *base = getenv("LOCALAPPDATA");
        return base && snprintf(buf, size, "%s\\mmapio", base) < (int)size;
    }
    PWSTR base = NULL;
    char b[MAX_PATH];
    bool ok = SUCCEEDED(SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, NULL, &base)) &&
              WideCharToMultiByte(CP_UTF8, 0, base, -1, b, sizeof(b), NULL, NULL) > 0 &&
              snprintf(buf, size, "%s\\mmapio", b) < (int)size;
    CoTaskMemFree(base);
    return ok;
}

/* Where the log goes: --log FILE, or as a service ROOT\.mmapiod\mmapiod.log
 * in a folder only the daemon's account can write (which no client path
 * reaches: beneath.h). 0, or EXIT_LOG with why said. */
static int start_log(const char *log, uint64_t max_bytes, bool service, const char *root)
{
    char buf[MAX_PATH];
    if (!log && snprintf(buf, sizeof(buf), "%s\\%s\\%s", root, BENEATH_STATE_DIR,
                         LOGFILE_NAME) >= (int)sizeof(buf)) {
        start_error(service, "the data root's name is too long for the log's");
        return EXIT_LOG;
    }
    int r = logfile_open(log ? log : buf, max_bytes, !log);
    if (r < 0) {
        start_error(service, "cannot log to %s: %s", log ? log : buf, strerror(-r));
        return EXIT_LOG;
    }
    return 0;
}

/* The daemon: parses argv, serves until stopped. Exit status; `on_up`
 * (when not NULL) is called once the pipe is served. */
static int serve(int argc, char **argv, bool service, void (*on_up)(void))
{
    const char *pipe = DEFAULT_PIPE, *root = NULL, *log = NULL;
    uint64_t log_max = LOGFILE_DEFAULT_BYTES;
    char root_buf[MAX_PATH];
    unsigned hello_ms = 5000;
    unsigned max_clients = 1024; /* each holds a read buffer of a frame */
    struct winops_config cfg = {
        .max_frame = WIRE_DEFAULT_MAX_FRAME,
        .max_inflight = 64,
        .max_events = 1024,
        .max_map_size = UINT64_C(1) << 40,
        .max_mappings = 65536,
        .max_mappings_per_uid = 16384,
        .max_bytes_per_uid = UINT64_C(1) << 40,
        .max_holders_per_client = 65536,
        .max_clients_per_uid = 256, /* a quarter of max_clients, as on Linux */
    };
    /* A bad option: at once on a console; a service first opens its log,
     * so that the reason is found there. */
    char bad[600] = "";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--version")) {
            printf("mmapiod %s (Windows)\n", MMAPIO_VERSION);
            return 0;
        } else if (!strcmp(a, "--verbose")) {
            log_set_level(LOG_LVL_DEBUG);
            continue;
        } else if (!strcmp(a, "--service")) {
            continue; /* main's */
        } else if (!v) {
            if (!bad[0])
                snprintf(bad, sizeof(bad), "%s: needs a value or is unknown (--help)", a);
            break;
        } else if (!strcmp(a, "--socket")) {
            pipe = v;
        } else if (!strcmp(a, "--root")) {
            root = v;
        } else if (!strcmp(a, "--log") && *v) {
            log = v;
        } else if (!strcmp(a, "--log_max_bytes") &&
                   !parse_u64(v, LOGFILE_MIN_BYTES, UINT64_C(1) << 40, &n)) {
            log_max = n;
        } else if (!strcmp(a, "--max_frame") && !parse_u64(v, 1024, 16u << 20, &n)) {
            cfg.max_frame = (uint32_t)n;
        } else if (!strcmp(a, "--max_map_size") && !parse_u64(v, 1, INT64_MAX, &n)) {
            cfg.max_map_size = n;
        } else if (!strcmp(a, "--max_mappings") && !parse_u64(v, 1, 65536, &n)) {
            cfg.max_mappings = (uint32_t)n;
        } else if (!strcmp(a, "--max_clients") && !parse_u64(v, 1, 65536, &n)) {
            max_clients = (unsigned)n;
        } else if (!strcmp(a, "--max_clients_per_uid") && !parse_u64(v, 1, 65536, &n)) {
            cfg.max_clients_per_uid = (uint32_t)n;
        } else if (!strcmp(a, "--max_events") && !parse_u64(v, 1, 1u << 20, &n)) {
            cfg.max_events = (uint32_t)n;
        } else if (!strcmp(a, "--hello_timeout_ms") && !parse_u64(v, 100, 600000, &n)) {
            hello_ms = (unsigned)n;
        } else if (!bad[0]) {
            snprintf(bad, sizeof(bad), "%s %s: unknown, out of range, or not served on "
                     "Windows yet (--help)", a, v);
        }
        i++;
    }
    if (bad[0] && !service) {
        start_error(false, "%s", bad);
        return EXIT_USAGE;
    }
    /* The log first when it does not depend on the root, so that the
     * root's errors reach it. */
    if (log && start_log(log, log_max, service, NULL))
        return EXIT_LOG;
    enum dataroot_kind kind = DATAROOT_GIVEN;
    if (!root) {
        if (!default_root(root_buf, sizeof(root_buf), service)) {
            start_error(service, "no --root, and no %s to put the data root in",
                        service ? "%ProgramData%" : "%LOCALAPPDATA%");
            logfile_close();
            return EXIT_ROOT;
        }
        root = root_buf;
        kind = service ? DATAROOT_SHARED : DATAROOT_PRIVATE;
    }
    char why[MAX_PATH + 200];
    cfg.root = dataroot_open(root, kind, why, sizeof(why));
    if (cfg.root == INVALID_HANDLE_VALUE) {
        start_error(service, "%s", why);
        logfile_close();
        return EXIT_ROOT;
    }
    if (!log && service && start_log(NULL, log_max, service, root)) {
        CloseHandle(cfg.root);
        return EXIT_LOG;
    }
    if (bad[0]) {
        start_error(service, "%s", bad);
        logfile_close();
        CloseHandle(cfg.root);
        return EXIT_USAGE;
    }

    cfg.pipe_name = pipe;
    cfg.root_path = root;
    cfg.max_clients = max_clients;
    cfg.hello_timeout_ms = hello_ms;
    struct winops *w;
    static const struct winops_port port = {port_send, port_send_event, port_close,
                                             port_admitted, port_pull, port_post};
    int r = winops_new(&w, &cfg, &port);
    if (r < 0) {
        log_err("cannot start: %s", strerror(-r));
        logfile_close();
        CloseHandle(cfg.root);
        return EXIT_FAILED;
    }
    struct ps_limits lim = {
        .max_frame = cfg.max_frame,
        .max_clients = max_clients,
        .max_queued = (size_t)cfg.max_frame * (cfg.max_inflight + 16),
        .hello_ms = hello_ms,
        .max_events = cfg.max_events,
    };
    static uint8_t overflow[32];
    lim.overflow = overflow;
    lim.overflow_len = winwatch_overflow(overflow, sizeof(overflow));
    static const struct ps_callbacks cb = {on_open, on_message, on_close};
    /* The stop event first: made only if nobody has it, it also keeps a
     * second daemon off the name where FILE_FLAG_FIRST_PIPE_INSTANCE is
     * not enforced (wine). */
    HANDLE stop = strncmp(pipe, DEFAULT_PIPE, 9) ? NULL : stop_event(pipe), wait = NULL;
    r = stop ? ps_new(&server, pipe, &lim, &cb, w) : -EADDRINUSE;
    if (r < 0) {
        log_err("cannot serve %s: %s", pipe,
                strncmp(pipe, DEFAULT_PIPE, 9) || r == -EINVAL
                    ? "a pipe name starts with \\\\.\\pipe\\"
                : r == -EADDRINUSE ? "another daemon serves it" : strerror(-r));
        if (stop)
            CloseHandle(stop);
        winops_free(w);
        logfile_close();
        CloseHandle(cfg.root);
        return EXIT_FAILED;
    }
    SetConsoleCtrlHandler(on_console, TRUE);
    if (!RegisterWaitForSingleObject(&wait, stop, on_stop_event, NULL, INFINITE,
                                     WT_EXECUTEONLYONCE)) {
        log_err("cannot wait for the stop event");
        ps_free(server);
        CloseHandle(stop);
        winops_free(w);
        logfile_close();
        CloseHandle(cfg.root);
        return EXIT_FAILED;
    }
    AcquireSRWLockExclusive(&stop_lock);
    stop_handle = stop;
    ReleaseSRWLockExclusive(&stop_lock);
    log_info("serving %s, data root %s", pipe, root);
    char domain[256];
    if (sid_domain(domain, sizeof(domain)))
        log_info("uids: RIDs of the account domain %s, other SIDs numbered from %#x",
                 domain, SIDMAP_FOREIGN);
    else
        log_info("uids: the account domain is not known, every SID numbered from %#x",
                 SIDMAP_FOREIGN);
    fflush(stderr);
    if (on_up)
        on_up();
    ps_run(server);
    log_info("stopping");
    UnregisterWaitEx(wait, INVALID_HANDLE_VALUE);
    AcquireSRWLockExclusive(&stop_lock);
    stop_handle = NULL;
    ReleaseSRWLockExclusive(&stop_lock);
    CloseHandle(stop);
    struct pipeserver *ps = server;
    server = NULL;
    ps_free(ps);
    winops_free(w);
    log_info("stopped");
    logfile_close();
    CloseHandle(cfg.root);
    return 0;
}

/* ---- as a Windows service ------------------------------------------------ */

/*
 * `--service` (what the service's binPath carries, README "Windows"):
 * the service control manager starts the process, which hands its main
 * thread to StartServiceCtrlDispatcherW; service_main serves with the
 * process's own command line. STOP and SHUTDOWN set the stop event.
 */
static SERVICE_STATUS_HANDLE svc_handle;
static SERVICE_STATUS svc_status = {
    .dwServiceType = SERVICE_WIN32_OWN_PROCESS,
    .dwCurrentState = SERVICE_START_PENDING,
};
static int svc_argc;
static char **svc_argv;

static SRWLOCK svc_lock = SRWLOCK_INIT; /* the control handler's thread and main's */

static void svc_report(DWORD state, DWORD wait_hint)
{
    AcquireSRWLockExclusive(&svc_lock);
    svc_status.dwCurrentState = state;
    svc_status.dwControlsAccepted =
        state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0;
    svc_status.dwWaitHint = wait_hint;
    svc_status.dwCheckPoint = state == SERVICE_RUNNING || state == SERVICE_STOPPED
                                  ? 0 : svc_status.dwCheckPoint + 1;
    SetServiceStatus(svc_handle, &svc_status);
    ReleaseSRWLockExclusive(&svc_lock);
}

static DWORD WINAPI svc_control(DWORD control, DWORD type, void *data, void *ctx)
{
    (void)type;
    (void)data;
    (void)ctx;
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
        svc_report(SERVICE_STOP_PENDING, 30000);
        AcquireSRWLockExclusive(&stop_lock);
        if (stop_handle)
            SetEvent(stop_handle);
        else
            InterlockedExchange(&stop_early, 1);
        ReleaseSRWLockExclusive(&stop_lock);
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
        return NO_ERROR;
    default:
        return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

static void svc_up(void)
{
    if (InterlockedCompareExchange(&stop_early, 0, 0)) {
        SetEvent(stop_handle); /* stopped while starting */
        return;
    }
    svc_report(SERVICE_RUNNING, 0);
}

static void WINAPI svc_main(DWORD argc, LPWSTR *argv)
{
    /* argv[0]: the name it was installed by; the start's own arguments
     * are not used (the binPath's are). */
    svc_handle = RegisterServiceCtrlHandlerExW(argc > 0 ? argv[0] : SERVICE_NAME,
                                               svc_control, NULL);
    if (!svc_handle)
        return;
    svc_report(SERVICE_START_PENDING, 10000);
    int rc = serve(svc_argc, svc_argv, true, svc_up);
    AcquireSRWLockExclusive(&svc_lock);
    svc_status.dwWin32ExitCode = rc ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR;
    svc_status.dwServiceSpecificExitCode = (DWORD)rc;
    ReleaseSRWLockExclusive(&svc_lock);
    svc_report(SERVICE_STOPPED, 0);
}

int main(int argc, char **argv)
{
    bool service = false;
    for (int i = 1; i < argc; i++)
        service |= !strcmp(argv[i], "--service");
    if (!service)
        return serve(argc, argv, false, NULL);
    svc_argc = argc;
    svc_argv = argv;
    static SERVICE_TABLE_ENTRYW table[] = {{(LPWSTR)SERVICE_NAME, svc_main}, {NULL, NULL}};
    if (StartServiceCtrlDispatcherW(table))
        return 0;
    DWORD err = GetLastError();
    if (err == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT)
        fprintf(stderr, "mmapiod: --service: not started by the service control "
                "manager; install it with sc.exe create (README, \"Windows\"), "
                "or run mmapiod without --service in a console\n");
    else
        fprintf(stderr, "mmapiod: --service: cannot reach the service control "
                "manager (%lu)\n", (unsigned long)err);
    return 1;
}
