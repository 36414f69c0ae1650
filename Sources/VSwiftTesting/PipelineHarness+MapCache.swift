import VSwiftDatapath
import VSwiftMapCache
import VSwiftPacket

/// remote_ip=map in the harness: the LISP port (slot 2) looks inner destinations up in a
/// map-cache snapshot the test publishes, as `Datapath.publishMapCache` hands one to every worker.
extension PipelineHarness {
    /// Turns the harness's LISP port into `remote_ip=map` in instance `instanceID`, with a resolved
    /// next hop for each of `rlocs` leaving by the underlay device (slot 1 when the harness
    /// encapsulates, slot 0 when it decapsulates), from the local RLOC of the RLOC's family (so
    /// LISP from them arriving on the underlay is on an underlay endpoint).
    /// `registered`: local RLOCs we registered, each an underlay endpoint on the underlay device
    /// (as `RegisteredRLOCEndpoints` derives them from the device holding the address).
    public func useMapCache(instanceID: UInt32, rlocs: [IPAddress], encapsulating: Bool = true, registered: [IPAddress] = []) {
        worker.setTunnelPort(2, bridge: 0, state: TunnelPortState(LISPPortOptions(remote: .map, key: .id(instanceID))))
        let underlay = PortSlot(rawValue: encapsulating ? 1 : 0)
        worker.setTunnelRouting(localRLOCs: [Self.localRLOC, Self.localRLOC6], nextHops: Self.mapNextHops(rlocs, encapsulating: encapsulating),
                                endpoints: registered.map { UnderlayEndpoint(localRLOC: $0, port: underlay, bridge: .unbridged) })
    }

    /// Resolved next hops to `rlocs` by the underlay device.
    static func mapNextHops(_ rlocs: [IPAddress], encapsulating: Bool) -> [TunnelNextHop] {
        rlocs.map { rloc in
            let local = rloc.isIPv4 ? localRLOC : localRLOC6
            var hop = TunnelNextHop(remote: rloc, local: IPAddress(), udpPort: LISP.udpPort, status: .resolved)
            hop.egressPort = PortSlot(rawValue: encapsulating ? 1 : 0)
            hop.localRLOC = local
            hop.parameters = LISP.EncapsulationParameters(
                ethernetDestination: nextHopMAC, ethernetSource: deviceMAC, source: local, destination: rloc)
            return hop
        }
    }

    /// Publishes `snapshot` to the worker (between runs, as the park handshake would).
    public func publishMapCache(_ snapshot: MapCacheSnapshot) {
        keptAlive.append(worker.installMapCache(snapshot))
        keptAlive.append(snapshot)
    }

    /// Replaces the next hops with resolved ones to `rlocs` only (as the resolver's new view would),
    /// leaving the port and its counters as they are.
    public func setMapNextHops(_ rlocs: [IPAddress]) {
        worker.setTunnelRouting(localRLOCs: [Self.localRLOC, Self.localRLOC6], nextHops: Self.mapNextHops(rlocs, encapsulating: true))
    }

    /// Moves the start of the worker's map-cache resolution epoch `seconds` into the past: the
    /// worker's clock, which a test cannot wait for.
    public func ageMapCacheResolutions(seconds: UInt64) {
        worker.ageMapCacheResolutions(by: seconds)
    }

    /// Moves up to `limit` queued misses into `misses`.
    public func drainMapCacheMisses(into misses: inout [MapCacheMiss], limit: Int = .max) -> Int {
        worker.drainMapCacheMisses(into: &misses, limit: limit)
    }
}
