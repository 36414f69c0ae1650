import CXDP
import Glibc
import VSwiftClassifier
import VSwiftPacket

/// Reconfiguration: what the control thread changes in a worker — sockets, ports, bridges, flow
/// tables, tunnel ports and routing. Every function here runs on the control thread while the
/// worker is parked (or not yet started): see the ownership list in Worker.swift.
extension Worker {
    // MARK: Sockets

    /// Opens a socket on (device, queue) for `port`, zero-copy if the driver can, else copy mode.
    func openSocket(device: NetworkDevice, queue: UInt32, port: PortSlot) throws(DatapathError) -> Int {
        guard let slot = (0..<DatapathLimits.maxSocketsPerWorker).first(where: { !sockets[$0].isOpen }) else {
            throw .unsupported("worker \(index) has no free socket slot")
        }
        let shareWith: Int32? = activeCount > 0 ? sockets[Int(activeSlots[0])].fd : nil
        let target = max(min(Int(pool.frameCount) / 2 / (activeCount + 1), Int(rings.fill) / 2), 1)
        var lastError: DatapathError = .unsupported("no bind mode")
        // Zero-copy where the driver has it, else copy mode; a socket sharing the UMEM inherits
        // the mode of the UMEM's first socket, so one UMEM cannot mix the two.
        let modes: [XSKBindMode] = shareWith == nil ? [.zeroCopy, .copy] : [sockets[Int(activeSlots[0])].mode]
        for mode in modes {
            do throws(DatapathError) {
                var socket = try XSKSocket.open(
                    device: device, queue: queue, umem: umem, shareWith: shareWith, rings: rings, mode: mode
                ) { socket in
                    var index: UInt32 = 0
                    let n = min(target, pool.freeCount)
                    let reserved = Int(xsk_ring_prod__reserve(&socket.fill, UInt32(n), &index))
                    for i in 0..<reserved {
                        guard let address = pool.allocate() else { break }
                        pool.handToKernel(address, slot: slot)
                        xsk_ring_prod__fill_addr(&socket.fill, index &+ UInt32(i)).pointee = address
                    }
                    xsk_ring_prod__submit(&socket.fill, UInt32(reserved))
                    socket.fillOutstanding = UInt32(reserved)
                }
                socket.portIndex = port
                sockets[slot] = socket
                activeSlots[activeCount] = Int32(slot)
                activeCount += 1
                rebuildPollSet()
                return slot
            } catch {
                _ = pool.reclaimAll(slot: slot)
                lastError = error
                if case .system(let sys) = error, sys.errno == EBUSY { break }
            }
        }
        throw lastError
    }

    /// Adds a socket with in-memory rings (see PipelineHarness), its fill ring topped up from the pool.
    package func attachInMemorySocket(port: PortSlot, size: UInt32) -> Int {
        let slot = (0..<DatapathLimits.maxSocketsPerWorker).first(where: { !sockets[$0].isOpen })!
        var socket = XSKSocket.inMemory(size: size)
        socket.portIndex = port
        sockets[slot] = socket
        activeSlots[activeCount] = Int32(slot)
        activeCount += 1
        rebuildPollSet()
        refill(slot: slot)
        return slot
    }

    /// Closes a socket and takes back every frame the kernel held through it.
    func closeSocket(slot: Int) {
        sockets[slot].close()
        _ = pool.reclaimAll(slot: slot)
        if let position = (0..<activeCount).first(where: { activeSlots[$0] == Int32(slot) }) {
            for i in position..<(activeCount - 1) { activeSlots[i] = activeSlots[i + 1] }
            activeCount -= 1
        }
        rebuildPollSet()
    }

    // MARK: Ports and bridges

    package func setPort(_ port: PortSlot, kind: PortKind, bridge: BridgeSlot, txSlot: Int32, tapFD: Int32) {
        let p = ports + port.index
        p.pointee.kind = kind
        p.pointee.bridge = bridge
        p.pointee.txSlot = txSlot
        p.pointee.tapFD = tapFD
        p.pointee.stagedCount = 0
        counters[port.index] = PortCounterBlock()
        if kind == .tap {
            tapPorts[tapPortCount] = port
            tapPortCount += 1
        }
        rebuildPollSet()
    }

    func clearPort(_ port: PortSlot) {
        let p = ports + port.index
        if p.pointee.kind == .tap, let position = (0..<tapPortCount).first(where: { tapPorts[$0] == port }) {
            for i in position..<(tapPortCount - 1) { tapPorts[i] = tapPorts[i + 1] }
            tapPortCount -= 1
        }
        p.pointee.kind = .none
        p.pointee.ofport = .unassigned
        p.pointee.bridge = .unbridged
        p.pointee.txSlot = -1
        p.pointee.tapFD = -1
        // A capture of the removed port ends (PortCapture sees its bits gone), and the slot's
        // next port starts uncaptured.
        p.pointee.captureRx = 0
        p.pointee.captureTx = 0
        rebuildPollSet()
    }

    package func setFlowTable(_ bridge: BridgeSlot, _ table: CompiledFlowTable?) {
        bridges[bridge.knownIndex].flowTable = table.map { Unmanaged.passUnretained($0) }
    }

    package func setPortNumber(_ port: PortSlot, ofport: OpenFlowPortNumber) {
        ports[port.index].ofport = ofport
    }

    /// Zeroes a rule counter slot that no published table uses (so no worker writes it).
    func clearRuleCounters(_ slot: Int) {
        let c = ruleCounters + slot
        vs_store_relaxed_u64(&c.pointee.packets, 0)
        vs_store_relaxed_u64(&c.pointee.bytes, 0)
        vs_store_relaxed_u64(&c.pointee.lastUsed, 0)
    }

    package func setBridge(_ slot: BridgeSlot, table: MACLearningTable?, members: [PortSlot]) {
        let bridge = slot.knownIndex
        bridges[bridge].macTable = table
        for (i, port) in members.enumerated() { bridges[bridge].ports[i] = port }
        bridges[bridge].portCount = members.count
    }


    /// Rebuilds the poll set after sockets or taps change (control thread, worker parked).
    func rebuildPollSet() {
        pollFDs[0] = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
        var n = 1
        for i in 0..<activeCount {
            pollFDs[n] = pollfd(fd: sockets[Int(activeSlots[i])].fd, events: Int16(POLLIN), revents: 0)
            n += 1
        }
        for i in 0..<tapPortCount {
            pollFDs[n] = pollfd(fd: ports[tapPorts[i].index].tapFD, events: Int16(POLLIN), revents: 0)
            n += 1
        }
        pollCount = n
        // Share the frames among the fill rings, keeping half the pool for frames in flight.
        let perSocket = Int(pool.frameCount) / 2 / max(activeCount, 1)
        fillTarget = max(min(perSocket, Int(rings.fill) / 2), 1)
    }

    // MARK: Tunnels

    package func setTunnelPort(_ port: PortSlot, bridge: BridgeSlot, state: TunnelPortState) {
        setPort(port, kind: .lisp, bridge: bridge, txSlot: -1, tapFD: -1)
        tunnelPortStates[port.index] = state
        tunnelCounters[port.index] = TunnelCounterBlock()
        if !(0..<tunnelPortCount).contains(where: { tunnelPorts[$0] == port }) {
            tunnelPorts[tunnelPortCount] = port
            tunnelPortCount += 1
        }
        rebuildTunnelPorts()
    }

    func clearTunnelPort(_ port: PortSlot) {
        if let position = (0..<tunnelPortCount).first(where: { tunnelPorts[$0] == port }) {
            for i in position..<(tunnelPortCount - 1) { tunnelPorts[i] = tunnelPorts[i + 1] }
            tunnelPortCount -= 1
        }
        rebuildTunnelPorts()
    }

    /// The distinct UDP ports LISP ports listen on (usually just 4341).
    private func rebuildTunnelPorts() {
        tunnelUDPPortCount = 0
        updateMapCachePrefetching()
        // Resolutions are per port slot: a slot's next port (other options) starts from none.
        mapCache.newEpoch(now: now)
        for i in 0..<tunnelPortCount {
            let udpPort = tunnelPortStates[tunnelPorts[i].index].udpPort
            if !(0..<tunnelUDPPortCount).contains(where: { tunnelUDPPorts[$0] == udpPort }), tunnelUDPPortCount < 8 {
                tunnelUDPPorts[tunnelUDPPortCount] = udpPort
                tunnelUDPPortCount += 1
            }
        }
    }

    /// Installs the resolver's view: local addresses, next hops, where the underlay is, and each
    /// fixed-remote port's entry.
    /// `endpoints`: the registered local RLOCs' (`RegisteredRLOCEndpoints`), kept first so route
    /// endpoints cannot crowd them out.
    package func setTunnelRouting(localRLOCs addresses: [IPAddress], nextHops hops: [TunnelNextHop],
                                  endpoints registered: [UnderlayEndpoint] = []) {
        localRLOCCount = min(addresses.count, Worker.maxLocalRLOCs)
        for i in 0..<localRLOCCount { localRLOCs[i] = addresses[i] }
        nextHops.clear()
        for hop in hops { _ = nextHops.insert(hop) }
        underlayEndpointCount = 0
        for endpoint in registered + hops.compactMap({ UnderlayEndpoint($0) }) {
            guard underlayEndpointCount < Worker.maxLocalRLOCs,
                  !(0..<underlayEndpointCount).contains(where: { underlayEndpoints[$0] == endpoint }) else { continue }
            underlayEndpoints[underlayEndpointCount] = endpoint
            underlayEndpointCount += 1
        }
        // Next-hop indices moved: remote_ip=map resolutions made with the old ones are forgotten.
        mapCache.newEpoch(now: now)
        for i in 0..<tunnelPortCount {
            let state = tunnelPortStates + tunnelPorts[i].index
            guard !state.pointee.remoteIsFlow && !state.pointee.remoteIsMap else { continue }
            let local = state.pointee.hasLocal ? state.pointee.local : IPAddress()
            let (index, found) = nextHops.find(state.pointee.remote, local: local, udpPort: state.pointee.udpPort)
            state.pointee.nextHop = found ? Int32(index) : -1
        }
    }
}
