/*
 * libworkbench-jvmagent.so: the workbench's agent as `workbench exec` starts it,
 * `-agentpath:libworkbench-jvmagent.so=<dir=PATH>` with `-Dworkbench.agent.jar=<the project jar>`: a native JVMTI
 * agent that serves the agent's socket itself and calls the Java agent (workbench.agent.NativeStart, in the jar)
 * only for what needs Java: the `stats` reply.
 *
 * Why not `-javaagent`: that option resolves the module java.instrument into the program's boot layer, and a JVM
 * whose module options differ from its CDS archive's turns off the archived module graph ("optimized module
 * handling: disabled due to incompatible property: jdk.module.addmods.0=java.instrument"): the program's JVM then
 * builds its module graph at start-up, +30 ms on JDK 17 and +37 ms on JDK 25 here, and has a module it would not
 * have had. This agent asks for no JVMTI capability; at VMInit (where -javaagent's premain runs too) it appends the
 * jar to the system class path, registers NativeStart's natives (addOpens: JVMTI AddModuleOpens, what
 * Instrumentation's redefineModule does, for the diagnostic command the agent reads NMT through; exiting: the exit
 * hold) and calls NativeStart.started.
 *
 * Why the socket is served here and not by the Java agent's ProbeServer: a JVM's first NIO server socket (its
 * channel classes, the directory checks through java.nio.file, SecureRandom for UnixDomainSockets) took the Java
 * agent's thread 77-100 ms from VMInit to its first answer here, while `workbench exec` held the program for its
 * start snapshot; bound here it is 0.1 ms. Replies go out of one static buffer (the Java server's went through
 * NIO's per-thread temporary direct buffer: a few KiB of the agent's own in the program's "direct" pool), and the
 * peer's uid is checked (SO_PEERCRED), which Java cannot.
 *
 * The protocol is ProbeServer's (one line in, one JSON line out, 2 s per client): stats, ping, release (ends the
 * start hold, -Dworkbench.agent.hold=MS), await-exit (answered {"exiting": true} when the JVM starts to exit; the exit
 * is then held, -Dworkbench.agent.exit-hold=MS, until release-exit, while a client that asked waits), release-exit.
 *
 * Rules as for the probe: it never aborts or exits the host. Agent_OnLoad always returns JNI_OK; a failure is one
 * line on stderr prefixed "workbench-agent:" and the program runs without the agent, never held.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jni.h>
#include <jvmti.h>

#include "probe.h"

#define JAR_PROPERTY "workbench.agent.jar"
#define HOLD_PROPERTY "workbench.agent.hold"
#define EXIT_HOLD_PROPERTY "workbench.agent.exit-hold"
#define START_CLASS "workbench.agent.NativeStart"
#define DIR_ARGUMENT "dir="
#define CLIENT_TIMEOUT_S 2  /* ProbeServer.CLIENT_TIMEOUT_MILLIS */
#define REQUEST_MAX 256     /* ProbeServer.MAX_REQUEST_BYTES */
#define WAITERS_MAX 8
#define SERVER_STACK_BYTES (1024 * 1024)

static jvmtiEnv *jvmti;
static JavaVM *g_vm;
static char *jar;        /* -Dworkbench.agent.jar, read at load */
static char *arguments;  /* the agent's options: empty or dir=<path> */
static long g_hold_ms, g_exit_hold_ms;
static jclass g_start;      /* NativeStart, a global reference */
static jmethodID g_stats;   /* NativeStart.stats(): the reply's bytes */
static int g_listen = -1;
static char g_socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
static char g_out[1 << 16];  /* the server thread's send buffer */

/* The holds: `release` and `release-exit` set their flag; the clients that wait with await-exit. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_changed;
static int g_released, g_exit_released, g_exiting, g_server_done;
static int g_wake[2] = {-1, -1};  /* written at the exit: the server thread detaches from the JVM and ends */
static int g_waiters[WAITERS_MAX];
static int g_waiting;

/* One line on stderr; error is JVMTI's code, or 0 (none) or -1 (a Java exception, cleared). */
static void warn(const char *what, int error) {
    if (error > 0) {
        fprintf(stderr, "workbench-agent: not started: %s (JVMTI error %d)\n", what, error);
    } else {
        fprintf(stderr, "workbench-agent: not started: %s%s\n", what, error < 0 ? " (a Java exception)" : "");
    }
}

/* The start ends at a pending Java exception or a missing value: one line, the exception cleared, the program runs. */
static int missing(JNIEnv *env, const void *value, const char *what) {
    if ((*env)->ExceptionCheck(env)) {
        (*env)->ExceptionClear(env);
        warn(what, -1);
        return 1;
    }
    if (value == NULL) {
        warn(what, 0);
        return 1;
    }
    return 0;
}

/* A -D property as milliseconds (0 when absent or not a non-negative number, as Long.getLong would give). */
static long property_ms(const char *name) {
    char *value = NULL;
    long ms = 0;
    if ((*jvmti)->GetSystemProperty(jvmti, name, &value) == JVMTI_ERROR_NONE && value != NULL) {
        char *end;
        errno = 0;
        long parsed = strtol(value, &end, 10);
        if (errno == 0 && end != value && *end == '\0' && parsed > 0)
            ms = parsed;
        (*jvmti)->Deallocate(jvmti, (unsigned char *)value);
    }
    return ms;
}

/* --- where the socket lives (ProbeDirectory.java's rule and checks) ------------------------------------------- */

/* dir=<path>, else the probe's directory (probe.h: $WORKBENCH_PROBE_DIR, $XDG_RUNTIME_DIR/workbench,
 * /tmp/workbench-<euid>); 0, or -1 (said why). */
static int resolve_directory(char *out, size_t size) {
    int fits;
    if (arguments[0] != '\0') {
        size_t prefix = strlen(DIR_ARGUMENT);
        if (strncmp(arguments, DIR_ARGUMENT, prefix) != 0 || arguments[prefix] == '\0') {
            fprintf(stderr, "workbench-agent: not started: unknown agent argument '%s'; expected dir=<path>\n",
                    arguments);
            return -1;
        }
        int n = snprintf(out, size, "%s", arguments + prefix);
        fits = n > 0 && (size_t)n < size;
    } else {
        fits = workbench_probe_dir(out, size) == 0;
    }
    if (!fits) {
        warn("the socket directory's path is too long", 0);
        return -1;
    }
    return 0;
}

/* The directory made (with its parents, 0700) if missing, then refused unless it is a real directory of this user
 * closed to group and others; 0, or -1 (said why). */
static int prepare_directory(char *dir) {
    for (char *slash = strchr(dir + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash != NULL)
            *slash = '\0';
        int made = mkdir(dir, 0700) == 0 || errno == EEXIST;
        if (slash != NULL)
            *slash = '/';
        if (!made && slash == NULL) {
            fprintf(stderr, "workbench-agent: not started: cannot create %s: %s\n", dir, strerror(errno));
            return -1;
        }
        if (slash == NULL)
            break;
    }
    struct stat st;
    if (lstat(dir, &st) != 0) {
        fprintf(stderr, "workbench-agent: not started: cannot read %s: %s\n", dir, strerror(errno));
        return -1;
    }
    if (S_ISLNK(st.st_mode)) {
        fprintf(stderr, "workbench-agent: refusing %s: it is a symlink\n", dir);
    } else if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "workbench-agent: refusing %s: it is not a directory\n", dir);
    } else if (st.st_uid != geteuid()) {
        fprintf(stderr, "workbench-agent: refusing %s: it is owned by uid %u, not by uid %u\n", dir,
                (unsigned)st.st_uid, (unsigned)geteuid());
    } else if ((st.st_mode & 0077) != 0) {
        char modes[10];
        for (int bit = 0; bit < 9; bit++)
            modes[bit] = (st.st_mode & (0400 >> bit)) ? "rwx"[bit % 3] : '-';
        modes[9] = '\0';
        fprintf(stderr, "workbench-agent: refusing %s: group/other can access it (%s); it must be mode 0700\n", dir,
                modes);
    } else {
        return 0;
    }
    return -1;
}

/* Binds and listens at <dir>/agent-<pid>.sock, mode 0600; 0, or -1 (said why). */
static int open_socket(const char *dir) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    int n = snprintf(address.sun_path, sizeof address.sun_path, "%s/agent-%ld.sock", dir, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof address.sun_path) {
        fprintf(stderr, "workbench-agent: not started: the socket path in %s is too long for a Unix socket\n", dir);
        return -1;
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        fprintf(stderr, "workbench-agent: not started: socket: %s\n", strerror(errno));
        return -1;
    }
    unlink(address.sun_path); /* left by an earlier process with this pid; the directory is ours alone */
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || chmod(address.sun_path, 0600) != 0 ||
        listen(fd, 8) != 0) {
        fprintf(stderr, "workbench-agent: not started: cannot serve %s: %s\n", address.sun_path, strerror(errno));
        unlink(address.sun_path);
        close(fd);
        return -1;
    }
    memcpy(g_socket, address.sun_path, sizeof g_socket);
    g_listen = fd;
    return 0;
}

/* --- the server thread ------------------------------------------------------------------------------------------ */

static int send_all(int fd, const char *data, size_t size) {
    for (size_t sent = 0; sent < size;) {
        ssize_t n = send(fd, data + sent, size - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        sent += (size_t)n;
    }
    return 0;
}

static void send_text(int fd, const char *text) {
    send_all(fd, text, strlen(text));
}

/* The first line (without surrounding whitespace, as ProbeServer strips it), or all a client sent before it closed,
 * timed out or filled the buffer; -1 when it sent nothing. */
static int read_command(int fd, char *line, size_t size) {
    if (workbench_receive_line(fd, line, size) == 0)
        return -1;
    line[strcspn(line, "\n")] = '\0';
    size_t end = strlen(line);
    while (end > 0 && (line[end - 1] == ' ' || line[end - 1] == '\t' || line[end - 1] == '\r'))
        line[--end] = '\0';
    size_t start = strspn(line, " \t\r");
    memmove(line, line + start, end - start + 1);
    return 0;
}

/* The `stats` reply from NativeStart.stats (this thread attached to the JVM, as a daemon, at its first one), sent
 * from g_out in parts: nothing of it is allocated outside the Java heap. */
static void send_stats(JNIEnv **env, int fd) {
    if (*env == NULL) {
        JavaVMAttachArgs attach = {JNI_VERSION_9, "workbench-agent", NULL};
        if ((*g_vm)->AttachCurrentThreadAsDaemon(g_vm, (void **)env, &attach) != JNI_OK) {
            *env = NULL;
            send_text(fd, "{\"error\": \"stats failed: the agent's thread could not attach to the JVM\"}\n");
            return;
        }
    }
    JNIEnv *e = *env;
    if ((*e)->PushLocalFrame(e, 4) != 0) {
        (*e)->ExceptionClear(e);
        send_text(fd, "{\"error\": \"stats failed: out of memory\"}\n");
        return;
    }
    jbyteArray reply = (jbyteArray)(*e)->CallStaticObjectMethod(e, g_start, g_stats);
    if ((*e)->ExceptionCheck(e) || reply == NULL) {
        (*e)->ExceptionClear(e);
        send_text(fd, "{\"error\": \"stats failed: NativeStart.stats threw\"}\n");
    } else {
        jsize length = (*e)->GetArrayLength(e, reply);
        for (jsize at = 0; at < length;) {
            jsize part = length - at < (jsize)sizeof g_out ? length - at : (jsize)sizeof g_out;
            (*e)->GetByteArrayRegion(e, reply, at, part, (jbyte *)g_out);
            if (send_all(fd, g_out, (size_t)part) != 0)
                break;
            at += part;
        }
    }
    (*e)->PopLocalFrame(e, NULL);
}

/* Sets a hold's flag and wakes whoever waits on it. */
static void release(int *flag) {
    pthread_mutex_lock(&g_lock);
    *flag = 1;
    pthread_cond_broadcast(&g_changed);
    pthread_mutex_unlock(&g_lock);
}

/* Answers one client; an await-exit client's connection is kept, to be answered when the JVM starts to exit. */
static void serve_client(JNIEnv **env) {
    int fd = accept4(g_listen, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    struct ucred peer;
    socklen_t size = sizeof peer;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0 || peer.uid != geteuid()) {
        close(fd);
        return;
    }
    struct timeval timeout = {CLIENT_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    char command[REQUEST_MAX];
    if (read_command(fd, command, sizeof command) != 0) {
        close(fd);
        return;
    }
    if (strcmp(command, "await-exit") == 0) {
        pthread_mutex_lock(&g_lock);
        int exiting_now = g_exiting, kept = !exiting_now && g_waiting < WAITERS_MAX;
        if (kept)
            g_waiters[g_waiting++] = fd;
        pthread_mutex_unlock(&g_lock);
        if (kept)
            return;
        send_text(fd, exiting_now ? "{\"exiting\": true}\n" : "{\"error\": \"too many clients wait for the exit\"}\n");
    } else if (strcmp(command, "stats") == 0) {
        send_stats(env, fd);
    } else if (strcmp(command, "ping") == 0) {
        char reply[64];
        snprintf(reply, sizeof reply, "{\"pid\": %ld}\n", (long)getpid());
        send_text(fd, reply);
    } else if (strcmp(command, "release") == 0) {
        release(&g_released);
        send_text(fd, "{\"released\": true}\n");
    } else if (strcmp(command, "release-exit") == 0) {
        release(&g_exit_released);
        send_text(fd, "{\"released\": true}\n");
    } else {
        send_text(fd, "{\"error\": \"unknown command\"}\n");
    }
    close(fd);
}

/* Serves until the exit hold ends. Then it detaches from the JVM: HotSpot's exit waits up to 300 ms for a thread
 * attached to it that is in native code (VM_Exit::wait_for_threads_in_native_to_block), as this one is in poll. */
static void *server_thread(void *unused) {
    (void)unused;
    JNIEnv *env = NULL;
    for (;;) {
        struct pollfd fds[2] = {{g_listen, POLLIN, 0}, {g_wake[0], POLLIN, 0}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "workbench-agent: stopped: poll: %s\n", strerror(errno));
            break;
        }
        if (fds[1].revents != 0)
            break; /* the exit */
        if (fds[0].revents & (POLLNVAL | POLLERR)) {
            fprintf(stderr, "workbench-agent: stopped: the program closed the agent's socket\n");
            break;
        }
        if (fds[0].revents & POLLIN)
            serve_client(&env);
    }
    if (env != NULL)
        (*g_vm)->DetachCurrentThread(g_vm);
    release(&g_server_done);
    return NULL;
}

/* The server thread, with every signal blocked in it (HotSpot unblocks its own when the thread attaches); 0 or -1. */
static int start_server(void) {
    sigset_t all, previous;
    pthread_attr_t attributes;
    pthread_t thread;
    pthread_condattr_t clock;
    if (pthread_condattr_init(&clock) != 0 || pthread_condattr_setclock(&clock, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&g_changed, &clock) != 0 || pthread_attr_init(&attributes) != 0)
        return -1;
    pthread_condattr_destroy(&clock);
    if (pipe2(g_wake, O_CLOEXEC) != 0) {
        pthread_attr_destroy(&attributes);
        return -1;
    }
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    /* A Java thread's stack as HotSpot gives one by default on x86-64 (ThreadStackSize 1M), not glibc's 8 MiB:
     * NMT counts an attached thread's stack as the JVM's Thread memory. */
    pthread_attr_setstacksize(&attributes, SERVER_STACK_BYTES);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);
    int error = pthread_create(&thread, &attributes, server_thread, NULL);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    pthread_attr_destroy(&attributes);
    if (error != 0)
        return -1;
    pthread_setname_np(thread, "workbench-agent");
    return 0;
}

/* Waits (g_lock held) until *flag is set or ms pass. */
static void wait_for(int *flag, long ms) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    while (!*flag && pthread_cond_timedwait(&g_changed, &g_lock, &deadline) != ETIMEDOUT)
        continue;
}

/* NativeStart.exiting, from the Java agent's shutdown hook: the waiting clients told, the exit held for them (up to
 * the exit hold) until release-exit, then the socket's file removed. */
static void JNICALL exiting(JNIEnv *env, jclass caller) {
    (void)env;
    (void)caller;
    if (g_listen < 0)
        return;
    pthread_mutex_lock(&g_lock);
    g_exiting = 1;
    int told = 0;
    for (int i = 0; i < g_waiting; i++) {
        told += send_all(g_waiters[i], "{\"exiting\": true}\n", 18) == 0;
        close(g_waiters[i]);
    }
    g_waiting = 0;
    if (told > 0 && g_exit_hold_ms > 0)
        wait_for(&g_exit_released, g_exit_hold_ms);
    unlink(g_socket); /* no new client finds it */
    char byte = 'x';
    if (write(g_wake[1], &byte, 1) == 1)
        wait_for(&g_server_done, 500); /* it answers the client it has first (each one is bounded by 2 s) */
    pthread_mutex_unlock(&g_lock);
}

static void JNICALL add_opens(JNIEnv *env, jclass caller, jobject module, jstring package, jobject to) {
    (void)caller;
    const char *name = (*env)->GetStringUTFChars(env, package, NULL);
    if (name == NULL) {
        return; /* OutOfMemoryError pending */
    }
    jvmtiError error = (*jvmti)->AddModuleOpens(jvmti, module, name, to);
    (*env)->ReleaseStringUTFChars(env, package, name);
    if (error != JVMTI_ERROR_NONE) {
        char message[64];
        snprintf(message, sizeof message, "JVMTI AddModuleOpens failed: error %d", (int)error);
        jclass refused = (*env)->FindClass(env, "java/lang/IllegalStateException");
        if (refused != NULL) {
            (*env)->ThrowNew(env, refused, message);
        }
    }
}

static void JNICALL vm_init(jvmtiEnv *env_jvmti, JNIEnv *env, jthread thread) {
    (void)thread;
    char dir[PATH_MAX];
    if (resolve_directory(dir, sizeof dir) != 0)
        return;
    jvmtiError error = (*env_jvmti)->AddToSystemClassLoaderSearch(env_jvmti, jar);
    if (error != JVMTI_ERROR_NONE) {
        warn("the jar could not be added to the class path", (int)error);
        return;
    }
    jclass loaders = (*env)->FindClass(env, "java/lang/ClassLoader");
    if (missing(env, loaders, "no java.lang.ClassLoader")) {
        return;
    }
    jmethodID system = (*env)->GetStaticMethodID(env, loaders, "getSystemClassLoader", "()Ljava/lang/ClassLoader;");
    if (missing(env, system, "no ClassLoader.getSystemClassLoader")) {
        return;
    }
    jmethodID load = (*env)->GetMethodID(env, loaders, "loadClass", "(Ljava/lang/String;)Ljava/lang/Class;");
    if (missing(env, load, "no ClassLoader.loadClass")) {
        return;
    }
    jobject loader = (*env)->CallStaticObjectMethod(env, loaders, system);
    if (missing(env, loader, "no system class loader")) {
        return;
    }
    jstring name = (*env)->NewStringUTF(env, START_CLASS);
    if (missing(env, name, "out of memory")) {
        return;
    }
    jclass start = (jclass)(*env)->CallObjectMethod(env, loader, load, name);
    if (missing(env, start, START_CLASS " could not be loaded from the jar")) {
        return;
    }
    JNINativeMethod natives[] = {
        {"addOpens", "(Ljava/lang/Module;Ljava/lang/String;Ljava/lang/Module;)V", (void *)add_opens},
        {"exiting", "()V", (void *)exiting},
    };
    jint registered = (*env)->RegisterNatives(env, start, natives, 2);
    if (missing(env, registered == JNI_OK ? start : NULL, "NativeStart's natives could not be registered")) {
        return;
    }
    jmethodID started = (*env)->GetStaticMethodID(env, start, "started", "(ZJ)V");
    if (missing(env, started, "no NativeStart.started")) {
        return;
    }
    g_stats = (*env)->GetStaticMethodID(env, start, "stats", "()[B");
    if (missing(env, g_stats, "no NativeStart.stats")) {
        return;
    }
    g_start = (jclass)(*env)->NewGlobalRef(env, start);
    if (missing(env, g_start, "out of memory")) {
        return;
    }
    if (prepare_directory(dir) != 0 || open_socket(dir) != 0) {
        return; /* said why; nothing holds the program */
    }
    /* The shutdown hook (the exit hold) registered, and, in a held JVM, the first stats reply's one-time costs paid
     * before the socket answers: the start snapshot comes next. */
    (*env)->CallStaticVoidMethod(env, start, started, (jboolean)(g_hold_ms > 0), (jlong)getpid());
    int failed = missing(env, start, "NativeStart.started threw");
    if (!failed && start_server() != 0) {
        warn("the server thread could not start", 0);
        failed = 1;
    }
    if (failed) {
        unlink(g_socket);
        close(g_listen);
        g_listen = -1;
        return;
    }
    if (g_hold_ms > 0) {
        /* The program's main waits here (as in -javaagent's premain) until `release`, at most the hold. */
        pthread_mutex_lock(&g_lock);
        wait_for(&g_released, g_hold_ms);
        pthread_mutex_unlock(&g_lock);
    }
}

JNIEXPORT jint JNICALL Agent_OnLoad(JavaVM *vm, char *options, void *reserved) {
    (void)reserved;
    g_vm = vm;
    if ((*vm)->GetEnv(vm, (void **)&jvmti, JVMTI_VERSION_9) != JNI_OK) {
        warn("no JVMTI 9 environment", 0);
        return JNI_OK;
    }
    char *value = NULL;
    if ((*jvmti)->GetSystemProperty(jvmti, JAR_PROPERTY, &value) != JVMTI_ERROR_NONE || value == NULL) {
        warn("-D" JAR_PROPERTY "=<the project jar> is missing", 0);
        return JNI_OK;
    }
    jar = value; /* JVMTI memory, kept for the JVM's life */
    g_hold_ms = property_ms(HOLD_PROPERTY);
    g_exit_hold_ms = property_ms(EXIT_HOLD_PROPERTY);
    arguments = strdup(options != NULL ? options : "");
    if (arguments == NULL) {
        warn("out of memory", 0);
        return JNI_OK;
    }
    jvmtiEventCallbacks callbacks;
    memset(&callbacks, 0, sizeof callbacks);
    callbacks.VMInit = vm_init;
    jvmtiError error = (*jvmti)->SetEventCallbacks(jvmti, &callbacks, (jint)sizeof callbacks);
    if (error == JVMTI_ERROR_NONE) {
        error = (*jvmti)->SetEventNotificationMode(jvmti, JVMTI_ENABLE, JVMTI_EVENT_VM_INIT, NULL);
    }
    if (error != JVMTI_ERROR_NONE) {
        warn("the VMInit event could not be enabled", (int)error);
    }
    return JNI_OK;
}
