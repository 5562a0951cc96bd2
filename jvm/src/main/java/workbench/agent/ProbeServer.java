package workbench.agent;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

/**
 * The agent's socket: a client sends one line and gets one JSON line back, then the connection closes.
 * {@code stats}: see {@link Stats}; {@code ping}: {"pid": N}; {@code release}: ends premain's hold
 * ({@code -Dworkbench.agent.hold=MS}); {@code await-exit}: answered {"exiting": true} only when the JVM starts to exit
 * (served on a thread of its own, so other clients go on), after which the exit is held (up to
 * {@code -Dworkbench.agent.exit-hold=MS}) until {@code release-exit}; anything else: {"error": "unknown command"}.
 * One client at a time, each bounded by {@link #CLIENT_TIMEOUT_MILLIS}, so a silent client cannot hold the agent.
 */
final class ProbeServer {
    static final long CLIENT_TIMEOUT_MILLIS = 2000;
    private static final int MAX_REQUEST_BYTES = 256;

    private final Path socket;
    private final Object lifecycle = new Object();
    private boolean shuttingDown;
    private ServerSocketChannel server;

    ProbeServer(Path socket) {
        this.socket = socket;
    }

    /** Binds the socket and answers clients until the JVM exits; the socket file goes with the JVM. */
    void serve() throws IOException {
        try {
            Runtime.getRuntime().addShutdownHook(new Thread(new Runnable() {
                @Override
                public void run() {
                    close();
                }
            }, "workbench-agent-cleanup"));
        } catch (IllegalStateException exiting) {
            return;
        }
        synchronized (lifecycle) {
            if (shuttingDown) {
                return;
            }
            // A file left by an earlier process with this pid; the directory is ours alone, so it is safe to drop.
            Files.deleteIfExists(socket);
            server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
            server.bind(UnixDomainSocketAddress.of(socket));
            Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rw-------"));
        }
        while (true) {
            SocketChannel client;
            try {
                client = server.accept();
            } catch (ClosedChannelException closedAtExit) {
                return;
            }
            boolean handedOver = false;
            try {
                handedOver = answer(client);
            } catch (IOException clientWentAway) {
                // Its problem, not the program's: serve the next one.
            } finally {
                if (!handedOver) {
                    closeQuietly(client);
                }
            }
        }
    }

    private void close() {
        ProbeAgent.EXITING.countDown();
        if (ProbeAgent.EXIT_HOLD_MILLIS > 0) {
            try {
                // Held only for a client that is waiting (counted when it asked, so none can be missed).
                if (ProbeAgent.EXIT_WAITERS.get() > 0) {
                    ProbeAgent.EXIT_RELEASE.await(ProbeAgent.EXIT_HOLD_MILLIS, java.util.concurrent.TimeUnit.MILLISECONDS);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        synchronized (lifecycle) {
            shuttingDown = true;
            try {
                if (server != null) {
                    server.close();
                }
                Files.deleteIfExists(socket);
            } catch (Throwable t) {
                ProbeAgent.warn("could not remove " + socket + ": " + t);
            }
        }
    }

    private static void closeQuietly(SocketChannel client) {
        try {
            client.close();
        } catch (IOException ignored) {
            // nothing to do
        }
    }

    /** Answers one client; true when the client was handed to a thread of its own ({@code await-exit}). */
    private static boolean answer(SocketChannel client) throws IOException {
        client.configureBlocking(false);
        long deadline = System.nanoTime() + CLIENT_TIMEOUT_MILLIS * 1_000_000;
        try (Selector selector = Selector.open()) {
            SelectionKey key = client.register(selector, SelectionKey.OP_READ);
            String request = readLine(client, selector, deadline);
            if (request == null) {
                return false;
            }
            if (request.strip().equals("await-exit")) {
                key.cancel();
                selector.selectNow();
                client.configureBlocking(true);
                ProbeAgent.EXIT_WAITERS.incrementAndGet();
                Thread waiter = new Thread(new Runnable() {
                    @Override
                    public void run() {
                        awaitExit(client);
                    }
                }, "workbench-agent-exit");
                waiter.setDaemon(true);
                waiter.start();
                return true;
            }
            byte[] reply = respond(request.strip()).concat("\n").getBytes(StandardCharsets.UTF_8); // see ProbeAgent.run
            key.interestOps(SelectionKey.OP_WRITE);
            ByteBuffer out = ByteBuffer.wrap(reply);
            while (out.hasRemaining()) {
                if (client.write(out) == 0 && !await(selector, deadline)) {
                    return false;
                }
            }
        }
        return false;
    }

    /** On its own thread: tell the client when the JVM starts to exit; the exit is then held for it. */
    private static void awaitExit(SocketChannel client) {
        try (client) {
            ProbeAgent.EXITING.await();
            client.write(ByteBuffer.wrap("{\"exiting\": true}\n".getBytes(StandardCharsets.UTF_8)));
        } catch (IOException | InterruptedException clientGone) {
            ProbeAgent.EXIT_RELEASE.countDown(); // nobody to hold the exit for
        }
    }

    /** The first line, or null when the client closes or times out before sending one. */
    private static String readLine(SocketChannel client, Selector selector, long deadline) throws IOException {
        ByteBuffer in = ByteBuffer.allocate(MAX_REQUEST_BYTES);
        while (true) {
            int read = client.read(in);
            for (int i = 0; i < in.position(); i++) {
                if (in.get(i) == '\n') {
                    return new String(in.array(), 0, i, StandardCharsets.UTF_8);
                }
            }
            if (read < 0 || !in.hasRemaining()) {
                // A client that half-closes after its command, or one whose line is far too long to be a command.
                return in.position() > 0 ? new String(in.array(), 0, in.position(), StandardCharsets.UTF_8) : null;
            }
            if (read == 0 && !await(selector, deadline)) {
                return null;
            }
        }
    }

    private static boolean await(Selector selector, long deadline) throws IOException {
        long left = (deadline - System.nanoTime()) / 1_000_000;
        if (left <= 0) {
            return false;
        }
        selector.select(left);
        selector.selectedKeys().clear();
        return true;
    }

    static String respond(String command) {
        switch (command) {
            case "stats":
                try {
                    return Stats.collect();
                } catch (Throwable t) {
                    return new Json().beginObject().field("error", "stats failed: " + t).endObject().toString();
                }
            case "ping":
                return new Json().beginObject().field("pid", ProcessHandle.current().pid()).endObject().toString();
            case "release":
                ProbeAgent.RELEASE.countDown();
                return new Json().beginObject().field("released", true).endObject().toString();
            case "release-exit":
                ProbeAgent.EXIT_RELEASE.countDown();
                return new Json().beginObject().field("released", true).endObject().toString();
            default:
                return new Json().beginObject().field("error", "unknown command").endObject().toString();
        }
    }
}
