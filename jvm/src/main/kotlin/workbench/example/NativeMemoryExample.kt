package workbench.example

import org.apache.arrow.memory.RootAllocator
import org.apache.arrow.vector.IntVector

private const val VALUE_COUNT = 100_000
private const val DEFAULT_SLEEP_MS = 60_000L
private const val SLEEP_ENV = "NATIVE_MEMORY_EXAMPLE_SLEEP_MS"

/**
 * The reference program as users write it in Kotlin: 100,000 ints in an Arrow IntVector (512 KiB from Arrow's
 * allocator), held while someone looks at the process, then closed. Run it as
 * `java --add-opens=java.base/java.nio=ALL-UNNAMED -Darrow.allocation.manager.type=Netty -cp <classpath>
 * workbench.example.NativeMemoryExampleKt [sleep ms]`; the hold is also read from $NATIVE_MEMORY_EXAMPLE_SLEEP_MS.
 */
fun main(args: Array<String>) {
    val sleepMs = args.firstOrNull()?.toLong() ?: System.getenv(SLEEP_ENV)?.toLongOrNull() ?: DEFAULT_SLEEP_MS
    val allocator = RootAllocator()
    val vector = IntVector("intVector", allocator)
    vector.allocateNew(VALUE_COUNT)
    for (i in 0 until VALUE_COUNT) {
        vector.set(i, i * 2)
    }
    vector.valueCount = VALUE_COUNT
    println("Allocated: ${allocator.allocatedMemory / 1024} KB")
    System.out.flush()
    Thread.sleep(sleepMs)
    vector.close()
    allocator.close()
    println("closed")
}
