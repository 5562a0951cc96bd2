package workbench.agent;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Map;
import java.util.Set;

/**
 * Where the agent's socket lives. Java cannot check a Unix socket peer's credentials, so the directory is the
 * access control: it must be a real directory owned by this user and closed to group and others (0700).
 * The same lookup is in workbench/probes/jvm_agent.py.
 */
final class ProbeDirectory {
    static final String ENV = "WORKBENCH_PROBE_DIR";
    private static final String DIR_ARGUMENT = "dir=";

    private ProbeDirectory() {}

    /** {@code dir=<path>} from the agent argument, else $WORKBENCH_PROBE_DIR, $XDG_RUNTIME_DIR/workbench, /tmp/workbench-uid. */
    static Path resolve(String args, Map<String, String> env) throws IOException {
        if (args != null && !args.isEmpty()) {
            if (!args.startsWith(DIR_ARGUMENT) || args.length() == DIR_ARGUMENT.length()) {
                throw new IllegalArgumentException("unknown agent argument '" + args + "'; expected dir=<path>");
            }
            return Path.of(args.substring(DIR_ARGUMENT.length()));
        }
        String probeDir = env.get(ENV);
        if (probeDir != null && !probeDir.isEmpty()) {
            return Path.of(probeDir);
        }
        String runtimeDir = env.get("XDG_RUNTIME_DIR");
        if (runtimeDir != null && !runtimeDir.isEmpty()) {
            return Path.of(runtimeDir, "workbench");
        }
        return Path.of("/tmp", "workbench-" + uid());
    }

    /** Creates the directory 0700 if missing; returns why it must not be used, or null when it is safe. */
    static String prepare(Path directory) throws IOException {
        Set<PosixFilePermission> ownerOnly = PosixFilePermissions.fromString("rwx------");
        if (!Files.exists(directory, LinkOption.NOFOLLOW_LINKS)) {
            try {
                Files.createDirectories(directory, PosixFilePermissions.asFileAttribute(ownerOnly));
            } catch (FileAlreadyExistsException raced) {
                // Another process made it first: the checks below decide whether it is usable.
            }
        }
        PosixFileAttributes attributes =
                Files.readAttributes(directory, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        String refusing = "refusing ".concat(directory.toString()).concat(": "); // no `+` here: see ProbeAgent.run
        if (attributes.isSymbolicLink()) {
            return refusing + "it is a symlink";
        }
        if (!attributes.isDirectory()) {
            return refusing + "it is not a directory";
        }
        if (!ownedByThisUser(directory)) {
            return refusing + "it is owned by " + attributes.owner().getName() + ", not by uid " + uid();
        }
        Set<PosixFilePermission> open = attributes.permissions();
        open.removeAll(ownerOnly);
        if (!open.isEmpty()) {
            return refusing + "group/other can access it (" + PosixFilePermissions.toString(attributes.permissions())
                    + "); it must be mode 0700";
        }
        return null;
    }

    private static boolean ownedByThisUser(Path directory) throws IOException {
        try {
            Object owner = Files.getAttribute(directory, "unix:uid", LinkOption.NOFOLLOW_LINKS);
            return ((Number) owner).longValue() == uid();
        } catch (UnsupportedOperationException | IllegalArgumentException noUnixView) {
            return Files.getOwner(directory, LinkOption.NOFOLLOW_LINKS).getName()
                    .equals(System.getProperty("user.name"));
        }
    }

    /** The real uid, from com.sun.security.auth.module.UnixSystem (jdk.security.auth) or /proc/self/status. */
    static long uid() throws IOException {
        try {
            Class<?> unixSystem = Class.forName("com.sun.security.auth.module.UnixSystem");
            return (Long) unixSystem.getMethod("getUid").invoke(unixSystem.getConstructor().newInstance());
        } catch (ReflectiveOperationException | LinkageError | RuntimeException unavailable) {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("Uid:")) {
                    return Long.parseLong(line.substring(4).trim().split("\\s+")[0]);
                }
            }
            throw new IOException("no uid: neither UnixSystem nor a Uid line in /proc/self/status");
        }
    }
}
