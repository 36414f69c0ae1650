import CSupport
import CXDP
import Glibc
import Testing
import VSwiftTesting
import VSwiftClassifier
import VSwiftPacket
@testable import VSwiftDatapath

/// The worker has one pipeline and several ways in: an rx burst (`forwardBurst`, from a socket's
/// rx ring), a frame on its own (`forward`: tap reads and frames of an underlay port), and a frame
/// that re-enters a bridge after encapsulation or decapsulation (`process`, with its context).
/// Whichever way a frame comes in, it must be counted on its rule, and acted on, the same way.
@Suite("One pipeline for bursts and single frames")
struct PipelineEntryPointTests {
    static let flows = [
        "priority=10,udp,tp_src=1000,actions=output:2",
        "priority=10,udp,tp_src=1001,actions=drop",
        "priority=10,udp,tp_src=1002,actions=dec_ttl,output:2",
        "priority=10,udp,tp_src=1003,actions=set_tunnel:5,output:2",
        "priority=5,udp,tp_src=1004,actions=mod_nw_tos:16,output:2,output:2",
        // Source ports 1005 and 1006 match no rule: table misses, dropped.
    ]

    /// Runs of equal frames and alternations, with lengths that differ, so that per-run counting
    /// and per-frame counting would disagree if either lost or doubled a frame.
    static let frames: [[UInt8]] = (0..<300).map { i in
        udpFrame(sourcePort: UInt16(1000 + (i / 3 + i % 2) % 7), payload: 18 + i % 5)
    }

    /// A worker with ports 0 (OpenFlow 1) and 1 (OpenFlow 2) on in-memory rings, in bridge 0 with `flows`.
    final class Rig {
        let worker: Worker
        let table: CompiledFlowTable
        let rxSlot: Int
        let txSlot: Int

        init() throws {
            var rings = RingSizes()
            rings.rx = 4096
            rings.tx = 4096
            rings.fill = 4096
            rings.completion = 4096
            worker = try Worker(index: 0, frameCount: 8192, frameSize: 4096, rings: rings, rxBatch: 32)
            rxSlot = worker.attachInMemorySocket(port: 0, size: 4096)
            txSlot = worker.attachInMemorySocket(port: 1, size: 4096)
            worker.setPort(0, kind: .xsk, bridge: 0, txSlot: Int32(rxSlot), tapFD: -1)
            worker.setPort(1, kind: .xsk, bridge: 0, txSlot: Int32(txSlot), tapFD: -1)
            worker.setPortNumber(0, ofport: 1)
            worker.setPortNumber(1, ofport: 2)
            worker.setBridge(0, table: MACLearningTable(), members: [0, 1])
            let slots: [OpenFlowPortNumber: PortSlot] = [1: 0, 2: 1]
            table = try CompiledFlowTable(rules: try rules(PipelineEntryPointTests.flows), portSlot: { slots[$0] })
            worker.setFlowTable(0, table)
        }

        /// Plays the kernel: each frame into a frame of the fill ring, onto the rx ring; then one
        /// round of the worker (bursts of `rxBatch`).
        func receiveAsBursts(_ frames: [[UInt8]]) {
            var next = 0
            while next < frames.count {
                let socket = worker.sockets + rxSlot
                let fill = socket.pointee.fill
                let rx = socket.pointee.rx
                var fillConsumer = fill.consumer.pointee
                var rxProducer = rx.producer.pointee
                let fillProducer = vs_acquire_load_u32(fill.producer)
                while next < frames.count && fillConsumer != fillProducer && rxProducer &- rx.consumer.pointee < rx.size {
                    let address = fill.ring.load(fromByteOffset: Int(fillConsumer & fill.mask) * 8, as: UInt64.self) &+ 256
                    frames[next].withUnsafeBytes { worker.base.advanced(by: Int(address)).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                    (rx.ring.assumingMemoryBound(to: xdp_desc.self) + Int(rxProducer & rx.mask)).pointee =
                        xdp_desc(addr: address, len: UInt32(frames[next].count), options: 0)
                    fillConsumer &+= 1
                    rxProducer &+= 1
                    next += 1
                }
                vs_release_store_u32(fill.consumer, fillConsumer)
                vs_release_store_u32(rx.producer, rxProducer)
                while worker.pollOnce() > 0 {}
            }
        }

        /// Each frame in a frame of its own from the pool, run by `enter`; then the round's flush.
        func receiveOneByOne(_ frames: [[UInt8]], enter: (Worker, UInt64, UInt32) -> Void) {
            for frame in frames {
                let address = worker.pool.allocate()! &+ 256
                frame.withUnsafeBytes { worker.base.advanced(by: Int(address)).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                enter(worker, address, UInt32(frame.count))
            }
            worker.flushStaged()
        }

        /// The frames on port 2's tx ring, in the order they were sent (nothing completes them here).
        var sentFrames: [[UInt8]] {
            let tx = (worker.sockets + txSlot).pointee.tx
            var frames: [[UInt8]] = []
            var index = tx.consumer.pointee
            let end = vs_acquire_load_u32(tx.producer)
            while index != end {
                let desc = (tx.ring.assumingMemoryBound(to: xdp_desc.self) + Int(index & tx.mask)).pointee
                frames.append(Array(UnsafeRawBufferPointer(start: worker.base + Int(desc.addr), count: Int(desc.len))))
                index &+= 1
            }
            return frames
        }

        /// Per rule: packets and bytes; then the table misses and what went out.
        var outcome: [UInt64] {
            (0..<PipelineEntryPointTests.flows.count).flatMap { slot -> [UInt64] in
                let c = worker.ruleCounters(slot)
                return [c.packets, c.bytes]
            } + [worker.portCounters(0).rxDropped, worker.portCounters(1).txPackets, worker.portCounters(1).txBytes]
        }
    }

    @Test func perRuleCountersAgreeForABurstAndForSingleFrames() throws {
        let frames = Self.frames
        let bursts = try Rig()
        bursts.receiveAsBursts(frames)
        let single = try Rig()
        single.receiveOneByOne(frames) { worker, address, length in
            worker.forward(address: address, length: length, inPort: 0, bridge: 0)
        }
        let reentered = try Rig()
        reentered.receiveOneByOne(frames) { worker, address, length in
            worker.process(address: address, length: length, inPort: 0, bridge: 0,
                           context: PacketContext(depth: Int32(Worker.maxTunnelDepth)))
        }

        // What the rules say, counted by hand: rule r gets the frames with source port 1000 + r.
        var expected = [UInt64](repeating: 0, count: Self.flows.count * 2)
        var misses: UInt64 = 0
        for frame in frames {
            let rule = Int(UInt16(frame[34]) << 8 | UInt16(frame[35])) - 1000
            if rule < Self.flows.count {
                expected[rule * 2] += 1
                expected[rule * 2 + 1] += UInt64(frame.count)
            } else {
                misses += 1
            }
        }
        #expect(Array(bursts.outcome.prefix(expected.count)) == expected)
        #expect(bursts.outcome[expected.count] == misses)
        #expect(single.outcome == bursts.outcome)
        #expect(reentered.outcome == bursts.outcome)

        // Frame by frame: what each rule sends, with its rewrite, in the order the frames came.
        func withIPv4Header(_ frame: [UInt8], _ change: (inout [UInt8]) -> Void) -> [UInt8] {
            var f = frame
            change(&f)
            Ref.put16(&f, 24, 0)
            Ref.put16(&f, 24, Ref.checksum(Array(f[14..<34])))
            return f
        }
        let sent = frames.flatMap { frame -> [[UInt8]] in
            switch Int(Ref.u16(frame, 34)) - 1000 {
            case 0, 3: [frame]                                                    // output:2 (set_tunnel: metadata only)
            case 2: [withIPv4Header(frame) { $0[22] -= 1 }]                       // dec_ttl
            case 4: Array(repeating: withIPv4Header(frame) { $0[15] = 16 }, count: 2)  // mod_nw_tos:16, twice out
            default: []                                                           // drop, table miss
            }
        }
        #expect(bursts.sentFrames.count == sent.count)
        #expect(bursts.sentFrames == sent)
        #expect(single.sentFrames == sent)
        #expect(reentered.sentFrames == sent)
        for rig in [bursts, single, reentered] { #expect(rig.worker.pool.violations == 0) }
    }
}
