import Testing
@testable import VSwiftDatapath

@Suite("Frame pool and ownership accounting")
struct FramePoolTests {
    @Test func allocatesEveryFrameOnceThenRunsDry() {
        var pool = FramePool(frameCount: 64, frameSize: 4096)
        defer { pool.destroy() }
        var seen = Set<UInt64>()
        while let frame = pool.allocate() {
            #expect(frame % 4096 == 0)
            #expect(seen.insert(frame).inserted, "frame \(frame) handed out twice")
        }
        #expect(seen.count == 64)
        #expect(pool.freeCount == 0)
        #expect(pool.census().worker == 64)
    }

    @Test func fusedFillAndCompletionTransitions() {
        var pool = FramePool(frameCount: 8, frameSize: 2048)
        defer { pool.destroy() }
        // Fill ring of socket 2 straight from the pool.
        var given: [UInt64] = []
        while let frame = pool.allocateForKernel(slot: 2) { given.append(frame) }
        #expect(given.count == 8)
        #expect(pool.census().kernel == [2: 8])
        // A completion through another socket is foreign: ignored and counted, the frame stays put.
        pool.recycleFromKernel(given[0], slot: 4)
        #expect(pool.violations == 1)
        #expect(pool.freeCount == 0)
        // Completions through the owning socket (any address inside the frame) go back to the pool.
        pool.recycleFromKernel(given[0] + 300, slot: 2)
        pool.recycleFromKernel(given[1], slot: 2)
        #expect(pool.freeCount == 2)
        #expect(pool.census().pool == 2)
        // Twice is a duplicate: counted, not pushed again.
        pool.recycleFromKernel(given[1], slot: 2)
        #expect(pool.violations == 2)
        #expect(pool.freeCount == 2)
        #expect(pool.allocate() == given[1])
        #expect(pool.allocate() == given[0])
    }

    @Test func roundTripThroughKernelKeepsTheInvariant() {
        var pool = FramePool(frameCount: 32, frameSize: 2048)
        defer { pool.destroy() }
        // Fill: 8 frames to socket 3.
        var filled: [UInt64] = []
        for _ in 0..<8 {
            let frame = pool.allocate()!
            pool.handToKernel(frame, slot: 3)
            filled.append(frame)
        }
        #expect(pool.census().kernel == [3: 8])
        // Rx on socket 3 at an offset inside the frame (as the kernel reports it).
        let received = filled[0] + 256
        let taken1 = pool.takeFromKernel(received, slot: 3)
        #expect(taken1)
        // Tx through socket 5, completion on 5.
        pool.handToKernel(received, slot: 5)
        let taken2 = pool.takeFromKernel(received, slot: 5)
        #expect(taken2)
        pool.release(received)
        let census = pool.census()
        #expect(census.pool == 32 - 7)
        #expect(census.kernel == [3: 7])
        #expect(pool.violations == 0)
    }

    @Test func duplicatedOrForeignAddressesAreCountedNotRecycled() {
        var pool = FramePool(frameCount: 16, frameSize: 2048)
        defer { pool.destroy() }
        let frame = pool.allocate()!
        pool.handToKernel(frame, slot: 0)
        let taken3 = pool.takeFromKernel(frame, slot: 0)
        #expect(taken3)
        // The same completion twice, or from another socket, or past the UMEM: refused and counted.
        let taken4 = pool.takeFromKernel(frame, slot: 0)
        #expect(!taken4)
        let taken5 = pool.takeFromKernel(frame, slot: 1)
        #expect(!taken5)
        let taken6 = pool.takeFromKernel(UInt64(16 * 2048 + 100), slot: 0)
        #expect(!taken6)
        pool.release(frame)
        pool.release(frame)  // double free
        #expect(pool.violations == 4)
        #expect(pool.freeCount == 16)
    }

    @Test func reclaimTakesBackExactlyTheClosedSocketsFrames() {
        var pool = FramePool(frameCount: 16, frameSize: 2048)
        defer { pool.destroy() }
        for slot in [1, 1, 1, 2, 2] {
            let frame = pool.allocate()!
            pool.handToKernel(frame, slot: slot)
        }
        #expect(pool.reclaimAll(slot: 1) == 3)
        #expect(pool.freeCount == 14)
        #expect(pool.census().kernel == [2: 2])
        // Reclaimed frames are allocatable again, each once.
        var seen = Set<UInt64>()
        while let frame = pool.allocate() { #expect(seen.insert(frame).inserted) }
        #expect(seen.count == 14)
    }

    @Test func accountingReportSpotsLeaksAndOrphans() {
        let ok = FrameAccounting(worker: 0, total: 10, free: 6, inWorker: 0, inKernel: 4, orphaned: 0, kernelByCounters: 4, violations: 0)
        #expect(ok.isConsistent)
        let leaked = FrameAccounting(worker: 0, total: 10, free: 5, inWorker: 1, inKernel: 4, orphaned: 0, kernelByCounters: 4, violations: 0)
        #expect(!leaked.isConsistent)
        let orphaned = FrameAccounting(worker: 0, total: 10, free: 5, inWorker: 0, inKernel: 4, orphaned: 1, kernelByCounters: 4, violations: 0)
        #expect(!orphaned.isConsistent)
        let miscounted = FrameAccounting(worker: 0, total: 10, free: 6, inWorker: 0, inKernel: 4, orphaned: 0, kernelByCounters: 5, violations: 0)
        #expect(!miscounted.isConsistent)
    }
}
