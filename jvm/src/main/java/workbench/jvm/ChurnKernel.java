package workbench.jvm;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.IntVector;

/**
 * Several threads allocate, fill and close IntVectors of varied sizes for a while; every {@code keepEvery}-th
 * iteration a small vector is kept alive instead (the pattern that fragments allocators). Returns the survivors.
 */
public final class ChurnKernel {
    private ChurnKernel() {}

    /** Result of a churn: the vectors kept alive and how many vectors were allocated in all. */
    public static final class Result {
        public final List<IntVector> survivors;
        public final long allocations;

        Result(List<IntVector> survivors, long allocations) {
            this.survivors = survivors;
            this.allocations = allocations;
        }
    }

    public static Result run(BufferAllocator allocator, int threads, long durationMillis, int minCount, int maxCount,
                             int keepEvery, long seed) throws InterruptedException {
        List<IntVector> survivors = Collections.synchronizedList(new ArrayList<>());
        AtomicLong allocations = new AtomicLong();
        long deadline = System.nanoTime() + durationMillis * 1_000_000L;
        List<Thread> workers = new ArrayList<>();
        List<Throwable> failures = Collections.synchronizedList(new ArrayList<>());
        for (int t = 0; t < threads; t++) {
            SplittableRandom random = new SplittableRandom(seed + t);
            Thread worker = new Thread(() -> {
                try {
                    long iteration = 0;
                    double logMin = Math.log(minCount);
                    double logMax = Math.log(maxCount);
                    while (System.nanoTime() < deadline) {
                        iteration++;
                        boolean keep = keepEvery > 0 && iteration % keepEvery == 0;
                        int count = keep
                                ? minCount + random.nextInt(Math.max(1, minCount * 3))
                                : (int) Math.exp(logMin + random.nextDouble() * (logMax - logMin));
                        IntVector vector = new IntVector("churn", allocator);
                        vector.allocateNew(count);
                        IntVectorKernels.fillSequence(vector, count, (int) iteration);
                        vector.setValueCount(count);
                        allocations.incrementAndGet();
                        if (keep) {
                            survivors.add(vector);
                        } else {
                            vector.close();
                        }
                    }
                } catch (Throwable e) {
                    failures.add(e);
                }
            }, "churn-" + t);
            workers.add(worker);
            worker.start();
        }
        for (Thread worker : workers) {
            worker.join();
        }
        if (!failures.isEmpty()) {
            for (IntVector v : survivors) {
                v.close();
            }
            Throwable first = failures.get(0);
            if (first instanceof RuntimeException) {
                throw (RuntimeException) first;
            }
            throw new RuntimeException(first);
        }
        return new Result(survivors, allocations.get());
    }
}
