import CXDP
import Glibc
import Synchronization
import VSwiftClassifier
import VSwiftPacket

/// Keeps the workers' view of the underlay current: which local addresses are RLOCs, and for every
/// remote RLOC a LISP port needs, the port the outer frame leaves by and its outer headers.
///
/// Everything comes from the kernel, as OVS's tunnels do: the route to the remote RLOC (device,
/// preferred source, gateway) and the next hop's MAC from the neighbour table, read over netlink.
/// A thread waits on a netlink socket subscribed to link, address, route and neighbour changes (and
/// on requests from workers), re-resolves, and publishes only when something changed. An unknown
/// neighbour makes the kernel solicit it (ARP / neighbour solicitation), at most once a second.
// @unchecked: its mutable fields belong to the resolver thread alone (after `start`, before `stop`
// joins it); other threads only call `wake`/`describe` (eventfd, `state` Mutex) and `stop`.
final class TunnelResolver: @unchecked Sendable {
    /// What the datapath tells the resolver, read under the datapath's lock.
    struct Inputs {
        /// Targets of LISP ports with a fixed remote_ip.
        var targets: Set<TunnelTarget> = []
        /// Devices vswift can transmit on, by ifindex.
        var egress: [UInt32: Egress] = [:]
        /// Worker request rings (remote_ip=flow).
        var requests: [TunnelRequestRing] = []
        /// The local RLOCs registered for our EIDs, while a remote_ip=map port exists
        /// (`RegisteredRLOCEndpoints`).
        var registeredRLOCs: [IPAddress] = []
    }

    struct Egress: Equatable {
        let port: PortSlot
        /// Not `.unbridged`: the device is this bridge's internal port (the frame enters the bridge).
        let bridge: BridgeSlot
        let name: String
        /// The device completes the outer IPv6 UDP checksum from TX metadata (see TxChecksum).
        let checksumOffload: Bool
    }

    /// The published result: what every worker holds.
    struct Published {
        var localRLOCs: [IPAddress] = []
        var nextHops: [TunnelNextHop] = []
        /// The underlay endpoints of the registered local RLOCs (`RegisteredRLOCEndpoints`).
        var registeredEndpoints: [UnderlayEndpoint] = []
        /// Per target, for `show`: where its packets go or why they cannot.
        var routes: [TunnelTarget: TunnelRoute] = [:]
    }

    private let inputs: () -> Inputs?
    private let publish: (Published) -> Void
    private let wakeFD: Int32
    private let running = Atomic<Bool>(true)
    private var thread: pthread_t?
    /// Targets workers asked for (remote_ip=flow); kept until the daemon restarts.
    private var requested: Set<TunnelTarget> = []
    private var lastSolicit: [IPAddress: UInt64] = [:]
    private var published = Published()
    private var hasPublished = false
    private let state = Mutex<[TunnelTarget: TunnelRoute]>([:])

    /// `inputs` returns nil when the datapath is shutting down.
    init(inputs: @escaping () -> Inputs?, publish: @escaping (Published) -> Void) {
        self.inputs = inputs
        self.publish = publish
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK) | Int32(EFD_CLOEXEC))
    }

    deinit { close(wakeFD) }

    /// The eventfd workers write to when they queue a request.
    var requestFD: Int32 { wakeFD }

    func start() {
        thread = startThread { self.run() }
    }

    /// Asks for a round now (a port was added or removed).
    func wake() { signalEventFD(wakeFD) }

    func stop() {
        guard let thread else { return }
        running.store(false, ordering: .releasing)
        wake()
        pthread_join(thread, nil)
        self.thread = nil
    }

    /// What `show` says about a target's next hop.
    func route(_ target: TunnelTarget) -> TunnelRoute? {
        state.withLock { $0[target] }
    }

    private func run() {
        let monitor = try? NetlinkMonitor()
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: monitor?.fd ?? -1, events: Int16(POLLIN), revents: 0)]
        while running.load(ordering: .acquiring) {
            guard let inputs = inputs() else { break }
            round(inputs)
            // Unresolved next hops are retried every second; otherwise changes wake us.
            _ = poll(&fds, nfds_t(fds.count), 1000)
            if fds[0].revents != 0 {
                var value: UInt64 = 0
                _ = read(wakeFD, &value, 8)
            }
            if fds[1].revents != 0 { _ = monitor?.drain() }
        }
    }

    private func round(_ inputs: Inputs) {
        for ring in inputs.requests {
            for target in ring.drain() { requested.insert(target) }
        }
        var result = Published()
        let addressDevices = (try? Netlink.localAddressDevices()) ?? []
        var locals = addressDevices.map { $0.address }
        // Addresses first seen on the wire are compared as IPAddress; keep the set small and stable.
        locals.sort { ($0.high, $0.low) < ($1.high, $1.low) }
        result.localRLOCs = Array(locals.prefix(Worker.maxLocalRLOCs))
        result.registeredEndpoints = RegisteredRLOCEndpoints.endpoints(
            for: inputs.registeredRLOCs, addressDevices: addressDevices, egress: inputs.egress)
        let now = Worker.monotonicSeconds()
        for target in inputs.targets.union(requested) {
            let (hop, route) = resolve(target, egress: inputs.egress, now: now)
            result.nextHops.append(hop)
            result.routes[target] = route
        }
        result.nextHops.sort { ($0.remote.high, $0.remote.low, $0.udpPort) < ($1.remote.high, $1.remote.low, $1.udpPort) }
        state.withLock { $0 = result.routes }
        if !hasPublished || !Self.same(result, published) {
            publish(result)
            published = result
            hasPublished = true
        }
    }

    /// One target's next hop from the kernel's tables.
    private func resolve(_ target: TunnelTarget, egress: [UInt32: Egress], now: UInt64) -> (TunnelNextHop, TunnelRoute) {
        var hop = TunnelNextHop(remote: target.remote, local: target.local, udpPort: target.udpPort, status: .noRoute)
        guard let route = try? Netlink.route(to: target.remote) else {
            return (hop, .noRoute(remote: target.remote))
        }
        guard let out = egress[route.ifindex] else {
            return (hop, .notAPort(remote: target.remote, device: NetworkDevice.name(ifindex: route.ifindex), ifindex: route.ifindex))
        }
        let source = target.local.isUnspecified ? route.source : target.local
        guard let source, source.isIPv4 == target.remote.isIPv4 else {
            return (hop, .noSource(remote: target.remote, device: out.name))
        }
        let nextHop = route.gateway ?? target.remote
        guard let link = try? Netlink.link(ifindex: route.ifindex), let deviceMAC = link.address else {
            return (hop, .noEthernetAddress(device: out.name))
        }
        hop.egressPort = out.port
        hop.egressBridge = out.bridge
        hop.localRLOC = source
        hop.mtu = link.mtu ?? 0
        guard let neighbour = try? Netlink.neighbour(nextHop, ifindex: route.ifindex), neighbour.isUsable,
              let neighbourMAC = neighbour.mac else {
            hop.status = .noNeighbour
            solicit(nextHop, ifindex: route.ifindex, now: now, every: 1)
            return (hop, .resolving(device: out.name, gateway: route.gateway, nextHop: nextHop))
        }
        // A stale entry is still used, but the kernel only re-checks what it uses itself: ask it to.
        if neighbour.state == UInt16(NUD_STALE) { solicit(nextHop, ifindex: route.ifindex, now: now, every: 5) }
        hop.status = .resolved
        hop.parameters = LISP.EncapsulationParameters(
            ethernetDestination: neighbourMAC, ethernetSource: deviceMAC, source: source,
            destination: target.remote, udpDestinationPort: target.udpPort,
            offloadUDPChecksum: out.checksumOffload && out.bridge == .unbridged && !target.remote.isIPv4)
        return (hop, .resolved(device: out.name, gateway: route.gateway, source: source, nextHopMAC: neighbourMAC,
                               mtu: hop.mtu, checksumOffloaded: hop.parameters.offloadUDPChecksum))
    }

    private func solicit(_ address: IPAddress, ifindex: UInt32, now: UInt64, every seconds: UInt64) {
        if let last = lastSolicit[address], now < last + seconds { return }
        lastSolicit[address] = now
        try? Netlink.solicit(address, ifindex: ifindex)
    }

    private static func same(_ a: Published, _ b: Published) -> Bool {
        guard a.localRLOCs == b.localRLOCs, a.registeredEndpoints == b.registeredEndpoints,
              a.nextHops.count == b.nextHops.count else { return false }
        for (x, y) in zip(a.nextHops, b.nextHops) {
            guard x.remote == y.remote, x.local == y.local, x.udpPort == y.udpPort, x.status == y.status,
                  x.egressPort == y.egressPort, x.egressBridge == y.egressBridge, x.mtu == y.mtu,
                  x.localRLOC == y.localRLOC,
                  x.parameters.ethernetDestination == y.parameters.ethernetDestination,
                  x.parameters.ethernetSource == y.parameters.ethernetSource,
                  x.parameters.source == y.parameters.source, x.parameters.destination == y.parameters.destination,
                  x.parameters.udpDestinationPort == y.parameters.udpDestinationPort,
                  x.parameters.offloadUDPChecksum == y.parameters.offloadUDPChecksum else { return false }
        }
        return true
    }
}
