import Foundation
import Testing
import VSwiftClassifier
import VSwiftMapCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// `remote_ip=map` through a real worker on in-memory rings: each inner destination goes to its
/// map-cache entry's RLOC (RFC 9301 §5.4 longest match, priority and weight; RFC 9300 §12 flow
/// hashing), misses are dropped, counted and queued for the control plane, a new snapshot is seen
/// by the next packet, and decapsulation trusts only the snapshot's RLOCs.
@Suite("Worker LISP through the map-cache (remote_ip=map)")
struct MapCachePipelineTests {
    static let iid: UInt32 = 1000
    static let rlocA = IPAddress("192.0.2.2")!
    static let rlocB = IPAddress("192.0.2.3")!
    static let rlocC = IPAddress("192.0.2.4")!
    static let rloc6 = IPAddress("2001:db8::2")!

    func prefix(_ text: String, _ instanceID: UInt32 = iid) -> EIDPrefix { EIDPrefix(instanceID: instanceID, text)! }

    /// A snapshot of `entries` (prefix, locators or negative action) with its own use marks.
    func snapshot(_ entries: [(EIDPrefix, [Locator], NegativeAction?)]) -> MapCacheSnapshot {
        let marks = UseMarks(capacity: max(entries.count, 1))
        return MapCacheSnapshot(entries.enumerated().map { i, e in
            SnapshotEntry(prefix: e.0, negative: e.2, locators: e.1, markSlot: i)
        }, marks: marks)
    }

    func one(_ rloc: IPAddress) -> [Locator] { [Locator(address: rloc, priority: 1, weight: 100)] }

    /// An IPv4 UDP frame to `destination` (host order) from 10.1.1.20:`sourcePort`.
    func frame4(to destination: UInt32, sourcePort: UInt16 = 1000) -> [UInt8] {
        var f = udpFrame(sourcePort: sourcePort)
        Ref.put32(&f, 30, destination)
        Ref.put16(&f, 24, 0)
        Ref.put16(&f, 24, Ref.checksum(Array(f[14..<34])))
        return f
    }

    func frame6(to destination: V6) -> [UInt8] {
        Build.ethernet(type: 0x86dd, Build.ipv6(dst: destination, next: 17, Build.udp(Array("eid".utf8))))
    }

    func harness(_ packets: [[UInt8]], rlocs: [IPAddress] = [rlocA, rlocB, rlocC, rloc6]) throws -> PipelineHarness {
        let harness = try PipelineHarness(packets: packets, rules: try rules(["in_port=1,actions=output:2"]), tunnel: .encapsulate)
        harness.useMapCache(instanceID: Self.iid, rlocs: rlocs)
        harness.recordSentFrames = true
        return harness
    }

    /// The frame the harness's underlay should carry for `inner` to `rloc`, written field by field
    /// (RFC 9300 §5.3; outer TTL and TOS inherited), with the IPv4 identification and UDP source
    /// port taken from `sent` (a counter and a flow hash).
    func expected(_ inner: [UInt8], rloc: IPAddress, sent: [UInt8]) -> [UInt8] {
        let lispHeader: [UInt8] = [0x48, 0, 0, 0, UInt8(Self.iid >> 16 & 0xff), UInt8(Self.iid >> 8 & 0xff), UInt8(Self.iid & 0xff), 0x01]
        let payload = Array(inner[14...])
        let udpLength = 8 + 8 + payload.count
        if rloc.isIPv4 {
            var ip: [UInt8] = [0x45, 0] + Ref.be16(UInt16(20 + udpLength)) + Array(sent[18..<20]) + [0x40, 0, 64, 17, 0, 0]
            ip += Ref.be32(PipelineHarness.localRLOC.ipv4) + Ref.be32(rloc.ipv4)
            Ref.put16(&ip, 10, Ref.checksum(ip))
            let udp = Array(sent[34..<36]) + Ref.be16(4341) + Ref.be16(UInt16(udpLength)) + [0, 0]
            return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00] + ip + udp + lispHeader + payload
        }
        let ip: [UInt8] = [0x60, 0, 0, 0] + Ref.be16(UInt16(udpLength)) + [17, 64] + PipelineHarness.localRLOC6.bytes + rloc.bytes
        var udp = Array(sent[54..<56]) + Ref.be16(4341) + Ref.be16(UInt16(udpLength)) + [0, 0]
        // RFC 8200 §8.1: the UDP checksum over the IPv6 pseudo-header is mandatory.
        let pseudo = PipelineHarness.localRLOC6.bytes + rloc.bytes + Ref.be32(UInt32(udpLength)) + [0, 0, 0, 17]
        var sum = Ref.checksum(pseudo + udp + lispHeader + payload)
        if sum == 0 { sum = 0xffff }
        Ref.put16(&udp, 6, sum)
        return [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd] + ip + udp + lispHeader + payload
    }

    @Test func eachDestinationLeavesEncapsulatedToItsLongestPrefixsRLOC() throws {
        let inners = [
            frame4(to: 0x0a01_011e),          // 10.1.1.30: the /24 → B
            frame4(to: 0x0a01_021e),          // 10.1.2.30: the /16 → A
            frame6(to: V6(high: 0x2001_0db8_0001_0000, low: 0x20)),  // 2001:db8:1::20 → the IPv6 RLOC
        ]
        let h = try harness(inners)
        h.publishMapCache(snapshot([
            (prefix("10.1.0.0/16"), one(Self.rlocA), nil),
            (prefix("10.1.1.0/24"), one(Self.rlocB), nil),
            (prefix("2001:db8:1::/48"), one(Self.rloc6), nil),
            // Another instance's entries are not this port's.
            (prefix("10.1.1.0/24", 2000), one(Self.rlocC), nil),
            (prefix("2001:db8:1::/48", 2000), one(Self.rlocC), nil),
        ]))
        _ = h.run(packets: 30)
        #expect(h.sentFrames.count == 30)
        let rlocs = [Self.rlocB, Self.rlocA, Self.rloc6]
        for (i, sent) in h.sentFrames.enumerated() {
            #expect(sent.device == .output)
            let want = expected(inners[i % 3], rloc: rlocs[i % 3], sent: sent.bytes)
            #expect(sent.bytes == want, "frame \(i): \(h.sentFramesDifference(from: [PipelineHarness.SentFrame(.output, want)]) ?? "")")
        }
        #expect(h.tunnelStatistics.encapsulated == 30)
        #expect(h.tunnelStatistics.droppedMapMiss == 0)
        #expect(h.accounting().isConsistent)
    }

    @Test func missesAreDroppedCountedAndQueuedOncePerPacketUpToTheBound() throws {
        let h = try harness([frame4(to: 0x0a09_0909)])
        // Nothing published: every destination misses.
        _ = h.run(packets: 10)
        #expect(h.sentFrames.isEmpty)
        #expect(h.tunnelStatistics.droppedMapMiss == 10)
        var misses: [MapCacheMiss] = []
        #expect(h.drainMapCacheMisses(into: &misses) == 10)
        #expect(misses.allSatisfy {
            $0 == MapCacheMiss(instanceID: Self.iid, destination: IPAddress("10.9.9.9")!, source: IPAddress("10.1.1.20")!)
        })
        // A snapshot that does not cover it: still a miss. Beyond the queue's room, counted.
        h.publishMapCache(snapshot([(prefix("10.1.0.0/16"), one(Self.rlocA), nil)]))
        _ = h.run(packets: 300)
        misses = []
        #expect(h.drainMapCacheMisses(into: &misses, limit: 1000) == 256)
        #expect(h.tunnelStatistics.droppedMapMiss == 310)
        #expect(h.tunnelStatistics.mapMissesUnqueued == 44)
        #expect(h.drainMapCacheMisses(into: &misses) == 0)
        #expect(h.accounting().isConsistent)
    }

    @Test func negativeEntriesAndUnusableLocatorsDropByTheirReason() throws {
        let h = try harness([frame4(to: 0x0a01_0101), frame4(to: 0x0a02_0101), frame4(to: 0x0a03_0101), frame4(to: 0x0a04_0101)])
        h.publishMapCache(snapshot([
            (prefix("10.1.0.0/16"), [], .drop),
            (prefix("10.2.0.0/16"), [], .nativelyForward),
            (prefix("10.3.0.0/16"), [], .sendMapRequest),
            // RFC 9301 §5.4: priority 255 is never used for unicast.
            (prefix("10.4.0.0/16"), [Locator(address: Self.rlocA, priority: 255, weight: 1)], nil),
        ]))
        _ = h.run(packets: 40)
        #expect(h.sentFrames.isEmpty)
        #expect(h.tunnelStatistics.droppedMapDrop == 10)
        #expect(h.tunnelStatistics.droppedMapNative == 10)
        #expect(h.tunnelStatistics.droppedMapMiss == 20)
        var misses: [MapCacheMiss] = []
        #expect(h.drainMapCacheMisses(into: &misses) == 20)
        #expect(Set(misses.map(\.destination)) == [IPAddress("10.3.1.1")!, IPAddress("10.4.1.1")!])
        #expect(h.accounting().isConsistent)
    }

    /// Bursts prefetch their next hops only when the `remote_ip=map` port's instance has more
    /// RLOCs than stay in L1 (`WorkerMapCache.nextHopPrefetchThreshold`); RLOCs of other
    /// instances do not count. Their resolution sets are prefetched whenever there is such a port.
    @Test func nextHopsArePrefetchedOnlyForAnInstanceWithManyRLOCs() throws {
        let h = try harness([frame4(to: 0x0a01_011e)])
        func rlocs(_ count: Int, instance: UInt32) -> [(EIDPrefix, [Locator], NegativeAction?)] {
            (0..<count).map { i in
                (prefix("10.5.\(i).0/24", instance), one(IPAddress(ipv4: 0xc633_6400 | UInt32(i))), nil)
            }
        }
        let threshold = WorkerMapCache.nextHopPrefetchThreshold
        h.publishMapCache(snapshot(rlocs(threshold, instance: Self.iid)))
        #expect(h.worker.mapCache.hasPorts)
        #expect(!h.worker.mapCache.prefetchesNextHops)
        h.publishMapCache(snapshot(rlocs(threshold + 1, instance: Self.iid)))
        #expect(h.worker.mapCache.prefetchesNextHops)
        h.publishMapCache(snapshot(rlocs(threshold + 1, instance: Self.iid + 1)))
        #expect(!h.worker.mapCache.prefetchesNextHops)
        // Prefetching or not, packets go where the map-cache says.
        h.publishMapCache(snapshot(rlocs(threshold + 1, instance: Self.iid) + [(prefix("10.1.1.0/24"), one(Self.rlocA), nil)]))
        #expect(h.worker.mapCache.prefetchesNextHops)
        _ = h.run(packets: 300)
        #expect(h.sentFrames.count == 300)
        #expect(h.sentFrames.allSatisfy { IPAddress(ipv4: Ref.u32($0.bytes, 30)) == Self.rlocA })
        #expect(h.accounting().isConsistent)
    }

    @Test func aNewSnapshotChangesTheRLOCOfTheNextPacketOfTheSameFlow() throws {
        let h = try harness([frame4(to: 0x0a01_011e)])
        h.publishMapCache(snapshot([(prefix("10.1.0.0/16"), one(Self.rlocA), nil)]))
        _ = h.run(packets: 5)
        h.publishMapCache(snapshot([(prefix("10.1.0.0/16"), one(Self.rlocB), nil)]))
        _ = h.run(packets: 1)
        #expect(h.sentFrames.count == 6)
        let destinations = h.sentFrames.map { IPAddress(ipv4: Ref.u32($0.bytes, 30)) }
        #expect(destinations == Array(repeating: Self.rlocA, count: 5) + [Self.rlocB])
        // And a withdrawn prefix misses at once.
        h.publishMapCache(snapshot([(prefix("10.2.0.0/16"), one(Self.rlocB), nil)]))
        _ = h.run(packets: 1)
        #expect(h.sentFrames.count == 6)
        #expect(h.tunnelStatistics.droppedMapMiss == 1)
    }

    @Test func weightsSpreadFlowsAndEachFlowKeepsItsRLOC() throws {
        let flows = (0..<64).map { frame4(to: 0x0a01_011e, sourcePort: UInt16(2000 + $0)) }
        let h = try harness(flows)
        h.publishMapCache(snapshot([(prefix("10.1.0.0/16"), [
            Locator(address: Self.rlocA, priority: 1, weight: 50), Locator(address: Self.rlocB, priority: 1, weight: 50),
            // A worse priority is not used while the best ones are up.
            Locator(address: Self.rlocC, priority: 2, weight: 100),
        ], nil)]))
        _ = h.run(packets: 64 * 3)
        #expect(h.sentFrames.count == 64 * 3)
        var chosen: [Int: IPAddress] = [:]
        for (i, sent) in h.sentFrames.enumerated() {
            let rloc = IPAddress(ipv4: Ref.u32(sent.bytes, 30))
            #expect(chosen[i % 64, default: rloc] == rloc, "flow \(i % 64) changed RLOC")
            chosen[i % 64] = rloc
        }
        let counts = Dictionary(grouping: chosen.values, by: { $0 }).mapValues(\.count)
        #expect(counts[Self.rlocC] == nil)
        #expect((counts[Self.rlocA] ?? 0) >= 16 && (counts[Self.rlocB] ?? 0) >= 16, "\(counts)")
    }

    // MARK: Decapsulation trust

    /// `inner` as LISP from `source` to the harness's local RLOC in instance `instanceID`.
    func lisp(_ inner: [UInt8], source: IPAddress, instanceID: UInt32 = iid) -> [UInt8] {
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512 + inner.count, alignment: 64)
        defer { buffer.deallocate() }
        var start = buffer + 256
        inner.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: inner.count) }
        var length = inner.count
        var parameters = PipelineHarness.encapsulationToHarness
        parameters.source = source
        _ = LISP.encapsulate(&start, length: &length, headroom: 256, instanceID: instanceID, parameters: parameters, ipIdentification: 7)
        return Array(UnsafeRawBufferPointer(start: start, count: length))
    }

    func decapsulating(from source: IPAddress) throws -> PipelineHarness {
        let h = try PipelineHarness(packets: [lisp(udpFrame(), source: source)], rules: try rules(["in_port=2,actions=output:1"]),
                                    tunnel: .decapsulate)
        h.useMapCache(instanceID: Self.iid, rlocs: [Self.rlocA], encapsulating: false)
        return h
    }

    @Test func decapsulationAcceptsOnlyRLOCsOfTheSnapshotInThePortsInstance() throws {
        // Before anything is published, no RLOC is known.
        let h = try decapsulating(from: Self.rlocA)
        _ = h.run(packets: 4)
        #expect(h.tunnelStatistics.decapsulated == 0)
        #expect(h.tunnelStatistics.droppedUnknownRLOC == 4)
        // An RLOC of an entry in the port's instance (a backup locator counts: it is the site's).
        h.publishMapCache(snapshot([(prefix("10.7.0.0/16"), [
            Locator(address: Self.rlocB, priority: 1, weight: 1), Locator(address: Self.rlocA, priority: 9, weight: 1, isUp: false),
        ], nil)]))
        let before = h.transmitted
        _ = h.run(packets: 4)
        #expect(h.tunnelStatistics.decapsulated == 4)
        #expect(h.transmitted - before == 4)
        // The same RLOC in another instance only: refused.
        h.publishMapCache(snapshot([(prefix("10.7.0.0/16", 2000), one(Self.rlocA), nil), (prefix("10.8.0.0/16"), one(Self.rlocB), nil)]))
        _ = h.run(packets: 4)
        #expect(h.tunnelStatistics.decapsulated == 4)
        #expect(h.tunnelStatistics.droppedUnknownRLOC == 8)
        #expect(h.accounting().isConsistent)
    }

    /// Refused, and the mapping system is asked about the inner *source* EID (first contact from a
    /// site not in the map-cache yet: once the reply names its RLOC, the next packets get in).
    @Test func decapsulationFromAnUnknownRLOCIsRefusedAndItsSourceEIDAskedAbout() throws {
        let h = try decapsulating(from: IPAddress("192.0.2.77")!)
        h.publishMapCache(snapshot([(prefix("10.7.0.0/16"), one(Self.rlocA), nil)]))
        _ = h.run(packets: 3)
        #expect(h.tunnelStatistics.decapsulated == 0)
        #expect(h.tunnelStatistics.droppedUnknownRLOC == 3)
        var misses: [MapCacheMiss] = []
        #expect(h.drainMapCacheMisses(into: &misses) == 3)
        #expect(misses.allSatisfy {
            $0 == MapCacheMiss(instanceID: Self.iid, destination: IPAddress("10.1.1.20")!, source: IPAddress("10.1.1.30")!)
        })
        // Once the mapping names the sender's RLOC, it is heard.
        h.publishMapCache(snapshot([(prefix("10.1.1.0/24"), one(IPAddress("192.0.2.77")!), nil)]))
        _ = h.run(packets: 2)
        #expect(h.tunnelStatistics.decapsulated == 2)
        #expect(h.drainMapCacheMisses(into: &misses) == 0)
    }

    // MARK: Trace

    /// A trace-mode worker sees the published snapshot and reports what each lookup found, and
    /// marks nothing and queues nothing the control plane would see.
    @Test func aTraceReportsTheMapCacheOutcome() throws {
        let h = try harness([frame4(to: 0x0a01_011e)])
        let marks = UseMarks(capacity: 2)
        let published = MapCacheSnapshot([
            SnapshotEntry(prefix: prefix("10.1.0.0/16"), locators: one(Self.rlocA), markSlot: 0),
            SnapshotEntry(prefix: prefix("10.3.0.0/16"), negative: .drop, locators: [], markSlot: 1),
        ], marks: marks)
        h.publishMapCache(published)
        let names: [UInt16: String] = [0: "vnet0", 1: "em1", 2: "lisp0"]
        let hit = try h.trace(frame4(to: 0x0a01_011e), inPort: 0, names: names)
        let stage = try #require(hit.stages.first)
        #expect(stage.mapCache.count == 1)
        #expect(stage.mapCache.first?.prefix == prefix("10.1.0.0/16") && stage.mapCache.first?.rloc == Self.rlocA)
        #expect(stage.mapCache.first?.port == "lisp0" && stage.mapCache.first?.action == .encapsulate)
        #expect(stage.outputs.first.map { IPAddress(ipv4: Ref.u32($0.frame, 30)) } == Self.rlocA)
        #expect(!marks.take(0), "a trace marks no entry used")
        let miss = try #require(try h.trace(frame4(to: 0x0a09_0909), inPort: 0, names: names).stages.first)
        #expect(miss.mapCache.first?.prefix == nil && miss.mapCache.first?.action == .miss)
        #expect(miss.events.contains { $0.counter == "map_miss" })
        let negative = try #require(try h.trace(frame4(to: 0x0a03_0101), inPort: 0, names: names).stages.first)
        #expect(negative.mapCache.first?.prefix == prefix("10.3.0.0/16") && negative.mapCache.first?.action == .drop)
        #expect(negative.events.contains { $0.counter == "map_drop" })
        var misses: [MapCacheMiss] = []
        #expect(h.drainMapCacheMisses(into: &misses) == 0, "a trace's misses go nowhere")
    }

    // MARK: The datapath

    /// `Datapath` as the control plane's `MapCachePublishing`: publications go through the real
    /// park handshake of running worker threads (each replacing and releasing the previous
    /// version), and draining idle workers moves nothing.
    @Test func theDatapathPublishesToRunningWorkersAndDrainsTheirQueues() throws {
        var configuration = Datapath.Configuration()
        configuration.workers = 2
        configuration.framesPerWorker = 1024
        configuration.bpfDirectory = ProcessInfo.processInfo.environment["VSWIFT_BPF_DIR"]
        let datapath = try Datapath(configuration: configuration)
        defer { datapath.shutdown() }
        let publisher: any MapCachePublishing = datapath
        for round in 0..<20 {
            publisher.publishMapCache(snapshot([(prefix("10.\(round).0.0/16"), one(Self.rlocA), nil)]))
        }
        #expect(datapath.mapCachePublication.entryCount == 1)
        #expect(datapath.mapCachePublication.rlocsToResolve == [Self.rlocA])
        var misses: [MapCacheMiss] = []
        #expect(publisher.drainMapCacheMisses(into: &misses, limit: 100) == 0)
        #expect(misses.isEmpty)
    }

    // MARK: Options

    @Test func remoteIPMapTakesTheKeyAsItsInstance() throws {
        let options = try LISPPortOptions(options: ["remote_ip": "map", "key": "1000"])
        #expect(options.remote == .map && options.key == .id(1000))
        #expect(try LISPPortOptions(options: ["remote_ip": "map"]).key == .id(0))
        #expect(throws: DatapathError.self) { try LISPPortOptions(options: ["remote_ip": "map", "key": "flow"]) }
    }
}
