/*
 * libworkbench-jvmagent.so: starts the workbench's Java agent (workbench.agent.NativeStart, in the project jar) from
 * a native JVMTI agent, `-agentpath:libworkbench-jvmagent.so=<the Java agent's arguments>` with
 * `-Dworkbench.agent.jar=<the project jar>`, as `workbench exec` starts its programs.
 *
 * Why not `-javaagent`: that option resolves the module java.instrument into the program's boot layer, and a JVM
 * whose module options differ from its CDS archive's turns off the archived module graph ("optimized module
 * handling: disabled due to incompatible property: jdk.module.addmods.0=java.instrument"): the program's JVM then
 * builds its module graph at start-up, +30 ms on JDK 17 and +37 ms on JDK 25 here, and has a module it would not
 * have had. This agent asks for no JVMTI capability; at VMInit (where -javaagent's premain runs too) it appends the
 * jar to the system class path, registers NativeStart.addOpens (JVMTI AddModuleOpens: what Instrumentation's
 * redefineModule does, for the diagnostic command the agent reads NMT through) and calls NativeStart.premain.
 *
 * Rules as for the probe: it never aborts or exits the host. Agent_OnLoad always returns JNI_OK; a failure is one
 * line on stderr prefixed "workbench-agent:" and the program runs without the agent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jni.h>
#include <jvmti.h>

#define JAR_PROPERTY "workbench.agent.jar"
#define START_CLASS "workbench.agent.NativeStart"

static jvmtiEnv *jvmti;
static char *jar;        /* -Dworkbench.agent.jar, read at load */
static char *arguments;  /* the agent's options, for NativeStart.premain */

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
    JNINativeMethod opens = {"addOpens", "(Ljava/lang/Module;Ljava/lang/String;Ljava/lang/Module;)V",
                             (void *)add_opens};
    jint registered = (*env)->RegisterNatives(env, start, &opens, 1);
    if (missing(env, registered == JNI_OK ? start : NULL, "NativeStart.addOpens could not be registered")) {
        return;
    }
    jmethodID premain = (*env)->GetStaticMethodID(env, start, "premain", "(Ljava/lang/String;)V");
    if (missing(env, premain, "no NativeStart.premain")) {
        return;
    }
    jstring args = (*env)->NewStringUTF(env, arguments);
    if (missing(env, args, "out of memory")) {
        return;
    }
    (*env)->CallStaticVoidMethod(env, start, premain, args); /* holds here (premain's hold), as -javaagent would */
    missing(env, start, "NativeStart.premain threw");
}

JNIEXPORT jint JNICALL Agent_OnLoad(JavaVM *vm, char *options, void *reserved) {
    (void)reserved;
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
