import CXDP
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

    @Test func fillCompletionAndTransmitInOnePass() {
        var pool = FramePool(frameCount: 8, frameSize: 2048)
        defer { pool.destroy() }
        // A fill ring of 16 entries, written from index 14 (it wraps): all 8 frames to socket 2.
        let ring = UnsafeMutablePointer<UInt64>.allocate(capacity: 16)
        defer { ring.deallocate() }
        #expect(pool.fill(ring, mask: 15, start: 14, count: 10, slot: 2) == 8)
        let given = (14..<22).map { ring[$0 & 15] }
        #expect(Set(given).count == 8 && given.allSatisfy { $0 % 2048 == 0 })
        #expect(pool.census().kernel == [2: 8])
        #expect(pool.fill(ring, mask: 15, start: 0, count: 4, slot: 2) == 0)
        // Completions: one through another socket (foreign: ignored, counted), one at an offset
        // inside its frame, one duplicated (the second time is counted, not pushed again).
        ring[3] = given[0]
        ring[4] = given[1] + 300
        ring[5] = given[2]
        ring[6] = given[2]
        pool.recycle(ring, mask: 15, start: 3, count: 1, slot: 4)
        #expect(pool.violations == 1 && pool.freeCount == 0)
        pool.recycle(ring, mask: 15, start: 3, count: 4, slot: 2)
        #expect(pool.violations == 2)
        #expect(pool.freeCount == 3)
        #expect(pool.census().pool == 3)
        // Transmit two worker-owned frames through socket 5: descriptors copied, bytes summed.
        let a = pool.allocate()!, b = pool.allocate()!
        let staged = [xdp_desc(addr: a + 256, len: 60, options: 0), xdp_desc(addr: b + 256, len: 1500, options: 0)]
        let tx = UnsafeMutablePointer<xdp_desc>.allocate(capacity: 4)
        defer { tx.deallocate() }
        #expect(pool.transmit(staged, count: 2, into: tx, mask: 3, start: 3, slot: 5) == 1560)
        #expect(tx[3].addr == a + 256 && tx[0].addr == b + 256 && tx[0].len == 1500)
        #expect(pool.census().kernel == [2: 5, 5: 2])
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
