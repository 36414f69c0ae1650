import Testing
import VSwiftMapCache
import VSwiftPacket
import VSwiftTesting
@testable import VSwiftDatapath

/// A worker's map-cache resolutions are keyed by (epoch, port, destination) in one word for IPv4
/// (`MapResolution`, `WorkerMapCache.key`): an IPv4 key can never equal an IPv6 one, two ports of
/// one instance id keep resolutions of their own, and no resolution survives its epoch, even when
/// the 15-bit epoch wraps.
@Suite("Worker map-cache resolution keys")
struct MapResolutionKeyTests {
    @Test func anIPv4KeyIsTheSameWhetherReadFromTheFrameOrFromTheAddress() {
        let cache = WorkerMapCache()
        let address = IPAddress("10.2.3.4")!
        let bytes: [UInt8] = [10, 2, 3, 4]
        let loaded = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
        #expect(WorkerMapCache.wireIPv4(address) == loaded)
        #expect(cache.key(port: 2, destination: address) == cache.key(port: 2, wireIPv4: loaded))
        #expect(WorkerMapCache.setNumber(address) == WorkerMapCache.setNumber(wireIPv4: loaded))
    }

    @Test func anIPv6DestinationNeverTakesAnIPv4Key() {
        let cache = WorkerMapCache()
        let v4 = IPAddress("10.2.3.4")!
        // The same low 32 bits, as an IPv6 address (not IPv4-mapped).
        let v6 = IPAddress(high: 0x2001_0db8_0000_0000, low: v4.low)
        #expect(cache.key(port: 2, destination: v6) != cache.key(port: 2, destination: v4))
        #expect(cache.key(port: 2, destination: v6) & WorkerMapCache.notIPv4Bit != 0)
        // Another port or another epoch: another key.
        let before = cache.key(port: 2, destination: v4)
        #expect(cache.key(port: 3, destination: v4) != before)
        cache.newEpoch(now: 0)
        #expect(cache.key(port: 2, destination: v4) != before)
    }

    @Test func wrappingTheEpochClearsEveryResolution() {
        let cache = WorkerMapCache()
        let destination = IPAddress("10.2.3.4")!
        let firstEpoch = cache.epoch
        let key = cache.key(port: 2, destination: destination)
        cache.set(destination).pointee = MapResolution(key: key, destination: destination, entry: 0, hop: 7)
        // Every epoch until the counter comes round to the first one again.
        for _ in 1..<Int(WorkerMapCache.epochLimit - 1) { cache.newEpoch(now: 0) }
        #expect(cache.epoch == WorkerMapCache.epochLimit - 1)
        #expect(cache.set(destination).pointee.key == key)   // not cleared before the wrap
        cache.newEpoch(now: 0)
        #expect(cache.epoch == firstEpoch)
        #expect(cache.key(port: 2, destination: destination) == key)
        #expect(cache.set(destination).pointee.key == 0)
        #expect(cache.set(destination).pointee.hop == -1)
    }

    /// Two `remote_ip=map` ports of one instance id, one with `dst_port=8472`: each packet output
    /// to both leaves once to each port's UDP port (before, the second port found the first's
    /// resolution, keyed by instance id, and sent to 4341 twice).
    @Test func twoPortsOfOneInstanceKeepTheirOwnNextHops() throws {
        let rloc = IPAddress("192.0.2.2")!
        var frame = udpFrame(sourcePort: 1000)
        Ref.put32(&frame, 30, 0x0a01_011e)
        Ref.put16(&frame, 24, 0)
        Ref.put16(&frame, 24, Ref.checksum(Array(frame[14..<34])))
        let harness = try PipelineHarness(packets: [frame], rules: try PipelineHarness.rules(["in_port=1,actions=output:2"]),
                                          tunnel: .encapsulate)
        harness.useMapCache(instanceID: 1000, rlocs: [rloc])
        try harness.addMapPort(instanceID: 1000, udpPort: 8472, rlocs: [rloc],
                               rules: try PipelineHarness.rules(["in_port=1,actions=output:2,output:3"]))
        let marks = UseMarks(capacity: 1)
        harness.publishMapCache(MapCacheSnapshot([
            SnapshotEntry(prefix: EIDPrefix(instanceID: 1000, "10.1.1.0/24")!, locators: [Locator(address: rloc, priority: 1, weight: 100)],
                          markSlot: 0),
        ], marks: marks))
        harness.recordSentFrames = true
        _ = harness.run(packets: 4)
        let ports = harness.sentFrames.map { Ref.u16($0.bytes, 36) }
        #expect(ports.count == 8)
        #expect(ports.filter { $0 == 4341 }.count == 4)
        #expect(ports.filter { $0 == 8472 }.count == 4)
    }
}
