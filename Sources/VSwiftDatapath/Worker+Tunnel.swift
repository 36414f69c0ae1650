import CSupport
import CXDP
import Glibc
import VSwiftClassifier
import VSwiftPacket

/// LISP on the packet path: decapsulation of frames that arrive for a local RLOC, encapsulation of
/// frames output to a LISP port. Both work in place in the UMEM frame: decap moves the frame start
/// forward, encap grows the frame into its headroom. Neither allocates, locks or retains.
extension Worker {
    /// Nesting limit for frames that re-enter a bridge after encapsulation (a LISP port whose
    /// route leads back into a bridge that outputs to a LISP port…): deeper frames are dropped.
    static let maxTunnelDepth = 3

    /// If the frame is LISP that arrived where the underlay is, for a local RLOC, decapsulates it
    /// and sends the inner packet into its LISP port's bridge (or drops and counts it) and returns
    /// true. Other frames (LISP passing through to another host, and LISP from off the underlay,
    /// which a tenant may have forged) are left alone: false, and the flow table handles them.
    @inline(never)
    func receiveTunnelled(address: UInt64, length: UInt32, inPort: PortSlot) -> Bool {
        let frame = base + Int(address)
        let inBridge = ports[inPort.index].bridge
        for u in 0..<tunnelUDPPortCount {
            let udpPort = tunnelUDPPorts[u]
            outer.pointee.destination = IPAddress()
            let parsed = LISP.parseOuter(frame, length: Int(length), udpPort: udpPort, into: outer)
            if parsed == .notLISP { continue }
            if parsed == .malformed {
                // A first outer fragment (Worker+Reassembly.swift).
                let l3 = FragmentReassembler.ipv4UDPFragmentOffset(frame, length: Int(length))
                if l3 > 0 && receiveOuterFragment(address: address, length: length, inPort: inPort, l3: l3, ipv6: false) { return true }
            }
            let destination = outer.pointee.destination
            // The trust boundary (DESIGN.md, "Trust boundary: LISP decapsulation"): only the
            // underlay may speak for a remote site, so LISP from anywhere else is never unwrapped.
            guard arrivesOnUnderlay(destination, inPort: inPort, inBridge: inBridge) else {
                if isLocalRLOC(destination) { countOffUnderlay(udpPort: udpPort) }
                return false
            }

            // The port: same UDP port, local_ip (if set) is the destination; a fixed remote_ip
            // must be the source, a remote_ip=map port's source an RLOC of its instance in the
            // map-cache, and a fixed key the instance id. Fixed remotes win over map, map over
            // flow. A fixed remote is heard only where its own route leaves, at its own local RLOC.
            let instanceID = outer.pointee.hasInstanceID ? outer.pointee.instanceID : 0
            var first: Int32 = -1
            var remoteMatch: Int32 = -1
            var chosen: Int32 = -1
            var chosenIsFlow = false
            // A remote_ip=map port of this instance that refused the source (not in its map-cache).
            var mapRefused = false
            for i in 0..<tunnelPortCount {
                let slot = tunnelPorts[i]
                let state = tunnelPortStates + slot.index
                guard state.pointee.udpPort == udpPort,
                      !state.pointee.hasLocal || state.pointee.local == destination else { continue }
                let isFixed = !state.pointee.remoteIsFlow && !state.pointee.remoteIsMap
                if isFixed {
                    let index = Int(state.pointee.nextHop)
                    guard index >= 0 else { continue }
                    let hop = nextHopEntries + index
                    guard hop.pointee.localRLOC == destination,
                          hop.pointee.egressBridge != .unbridged ? inBridge == hop.pointee.egressBridge : inPort == hop.pointee.egressPort
                    else { continue }
                }
                if first < 0 { first = Int32(slot.rawValue) }
                guard state.pointee.remoteIsFlow
                    || (state.pointee.remoteIsMap
                        ? mapCacheTrusts(instanceID: state.pointee.key, source: outer.pointee.source)
                        : state.pointee.remote == outer.pointee.source)
                else {
                    if state.pointee.remoteIsMap && state.pointee.key == instanceID { mapRefused = true }
                    continue
                }
                if remoteMatch < 0 { remoteMatch = Int32(slot.rawValue) }
                guard state.pointee.keyIsFlow || state.pointee.key == instanceID else { continue }
                if chosen < 0 || isFixed || (chosenIsFlow && state.pointee.remoteIsMap) {
                    chosen = Int32(slot.rawValue)
                    chosenIsFlow = state.pointee.remoteIsFlow
                }
                if isFixed { break }
            }
            guard first >= 0 else { return false }
            let counters = tunnelCounters + Int(chosen >= 0 ? chosen : first)
            if parsed == .malformed {
                vs_add_relaxed_u64(&counters.pointee.badHeader, 1)
                pool.release(address)
                return true
            }
            if parsed == .badInnerLength {
                vs_add_relaxed_u64(&counters.pointee.badInnerLength, 1)
                pool.release(address)
                return true
            }
            if parsed == .encrypted {
                vs_add_relaxed_u64(&counters.pointee.encrypted, 1)
                pool.release(address)
                return true
            }
            guard chosen >= 0 else {
                if remoteMatch < 0 {
                    vs_add_relaxed_u64(&counters.pointee.unknownRLOC, 1)
                    if mapRefused { askMappingOfSource(frame, instanceID: instanceID, counters: counters) }
                } else {
                    vs_add_relaxed_u64(&(tunnelCounters + Int(remoteMatch)).pointee.iidMismatch, 1)
                }
                pool.release(address)
                return true
            }
            var start = frame
            var innerLength = Int(length)
            switch LISP.decapsulate(&start, length: &innerLength, outer: outer) {
            case .done:
                break
            case .congestionOnNotECT:
                vs_add_relaxed_u64(&counters.pointee.ceNotECT, 1)
                pool.release(address)
                return true
            case .ttlExpired:
                vs_add_relaxed_u64(&counters.pointee.ttlExpired, 1)
                pool.release(address)
                return true
            }
            let port = PortSlot(rawValue: UInt16(chosen))
            vs_add_relaxed_u64(&counters.pointee.decapsulated, 1)
            vs_add_relaxed_u64(&self.counters[port.index].rxPackets, 1)
            vs_add_relaxed_u64(&self.counters[port.index].rxBytes, UInt64(innerLength))
            let captureTaps = ports[port.index].captureRx
            if captureTaps != 0 { captureFrame(address: UInt64(start - base), length: UInt32(innerLength), direction: .rx, taps: captureTaps) }
            // The inner packet starts on its way with the outer headers' metadata (tun_id, tun_src,
            // tun_dst) and no encapsulation.
            let context = PacketContext(
                tunnelID: UInt64(instanceID),
                tunnelSource: outer.pointee.source.isIPv4 ? outer.pointee.source.ipv4 : 0,
                tunnelDestination: outer.pointee.destination.isIPv4 ? outer.pointee.destination.ipv4 : 0)
            if traceHandoffs != nil {
                // A trace runs the inner packet as a stage of its own (Worker+Trace.swift).
                traceHandOff(TraceHandoff(kind: .decapsulated, lispPort: port, address: UInt64(start - base),
                                          length: UInt32(innerLength), inPort: port, bridge: ports[port.index].bridge,
                                          context: context))
                return true
            }
            process(address: UInt64(start - base), length: UInt32(innerLength), inPort: port, bridge: ports[port.index].bridge,
                    context: context, decapsulated: true)
            return true
        }
        // A later outer fragment has no UDP header to match, nor has an IPv6 fragment a UDP header
        // where parseOuter looks (Worker+Reassembly.swift).
        return receiveOuterFragment(address: address, length: length, inPort: inPort)
    }

    @inline(__always)
    func isLocalRLOC(_ address: IPAddress) -> Bool {
        for i in 0..<localRLOCCount where localRLOCs[i] == address { return true }
        return false
    }

    /// Is `destination` the local RLOC of a route to a remote RLOC, and did the frame arrive where
    /// that route leaves (see UnderlayEndpoint)? A few compares per known route.
    @inline(__always)
    func arrivesOnUnderlay(_ destination: IPAddress, inPort: PortSlot, inBridge: BridgeSlot) -> Bool {
        for i in 0..<underlayEndpointCount {
            let endpoint = underlayEndpoints + i
            if endpoint.pointee.localRLOC == destination && endpoint.pointee.admits(inPort: inPort, inBridge: inBridge) {
                return true
            }
        }
        return false
    }

    /// LISP to this host from off the underlay: counted on the first LISP port of its UDP port.
    private func countOffUnderlay(udpPort: UInt16) {
        for i in 0..<tunnelPortCount where tunnelPortStates[tunnelPorts[i].index].udpPort == udpPort {
            vs_add_relaxed_u64(&(tunnelCounters + tunnelPorts[i].index).pointee.offUnderlay, 1)
            return
        }
    }

    /// Output to a LISP port: find the next hop, encapsulate in place, and send the outer frame on
    /// (into the bridge whose internal port the route leaves by, or to an underlay port's tx ring).
    /// `context` is the inner packet's: its tun_id (key=flow), tun_dst (remote_ip=flow) and depth;
    /// `inPort` the port it came in on (where a "too big" answer goes, Worker+PathMTU.swift).
    @inline(never)
    func sendThroughTunnel(port: PortSlot, address: UInt64, length: UInt32, context: PacketContext, inPort: PortSlot) {
        let state = tunnelPortStates + port.index
        let counters = tunnelCounters + port.index
        var hopIndex = Int(state.pointee.nextHop)
        if state.pointee.remoteIsMap {
            // remote_ip=map: the RLOC is the map-cache's for the inner destination (Worker+MapCache.swift):
            // an untagged IPv4 frame's resolution read inline, anything else decided out of line.
            hopIndex = cachedMapCacheHop(port: port, frame: base + Int(truncatingIfNeeded: address), length: Int(length))
            if hopIndex < 0 {
                hopIndex = mapCacheNextHop(port: port, state: state, counters: counters, address: address, length: length)
                if hopIndex == Self.mapCacheDropped { return }
            }
        } else if state.pointee.remoteIsFlow {
            // remote_ip=flow: the destination RLOC is tun_dst, set by the flow.
            let remote = IPAddress(ipv4: context.tunnelDestination)
            let local = state.pointee.hasLocal ? state.pointee.local : IPAddress()
            guard context.tunnelDestination != 0 else {
                vs_add_relaxed_u64(&counters.pointee.noRoute, 1)
                pool.release(address)
                return
            }
            let udpPort = state.pointee.udpPort
            let (index, found) = nextHops.find(remote, local: local, udpPort: udpPort)
            if !found && index >= 0 {
                // Claim the slot as pending and ask the resolver once; later packets see pending.
                if tunnelRequests.push(TunnelTarget(remote: remote, local: local, udpPort: udpPort)) {
                    nextHopEntries[index] = TunnelNextHop(remote: remote, local: local, udpPort: udpPort, status: .noNeighbour)
                    tunnelResolverWake()
                }
            }
            hopIndex = found ? index : -1
        }
        guard hopIndex >= 0 else {
            vs_add_relaxed_u64(&counters.pointee.noNeighbour, 1)
            pool.release(address)
            return
        }
        let hop = nextHopEntries + hopIndex
        switch hop.pointee.status {
        case .resolved:
            break
        case .noRoute, .empty:
            vs_add_relaxed_u64(&counters.pointee.noRoute, 1)
            pool.release(address)
            return
        case .noNeighbour:
            vs_add_relaxed_u64(&counters.pointee.noNeighbour, 1)
            pool.release(address)
            return
        }
        guard context.depth < Int32(Self.maxTunnelDepth) else {
            vs_add_relaxed_u64(&self.counters[port.index].txErrors, 1)
            pool.release(address)
            return
        }
        // Over the egress MTU once encapsulated (14 bytes of L2 at least go)? Fragment or answer.
        let mtu = Int(hop.pointee.mtu)
        if mtu != 0 {
            let outerIPv6 = !hop.pointee.parameters.source.isIPv4
            if Int(length) &- Ethernet.headerLength &+ Self.tunnelIPOverhead(outerIPv6: outerIPv6) > mtu,
               handleTooBig(port: port, address: address, length: length, context: context, inPort: inPort, mtu: mtu,
                            outerIPv6: outerIPv6) {
                return
            }
        }
        // A capture sees the frame before encapsulation, kept only if the port sends it.
        let captureTaps = ports[port.index].captureTx
        if captureTaps != 0 { captureTentatively(address: address, length: length, taps: captureTaps) }
        let frameBase = address & ~(UInt64(frameSize) - 1)
        var start = base + Int(address)
        var outerLength = Int(length)
        let instanceID = state.pointee.keyIsFlow ? UInt32(truncatingIfNeeded: context.tunnelID) & 0xff_ffff : state.pointee.key
        ipIdentification &+= 1
        let result = LISP.encapsulate(
            &start, length: &outerLength, headroom: Int(address - frameBase) - UmemArea.txMetadataRoom,
            instanceID: instanceID, parameters: hop.pointee.parameters, fields: state.pointee.outerFields,
            ipIdentification: ipIdentification)
        switch result {
        case .done:
            break
        case .notIP:
            vs_add_relaxed_u64(&counters.pointee.nonIP, 1)
            pool.release(address)
            return
        case .noRoom:
            vs_add_relaxed_u64(&self.counters[port.index].txErrors, 1)
            pool.release(address)
            return
        }
        // The egress device would drop it (veth and most drivers do so silently): count it here.
        if mtu != 0 && outerLength - Ethernet.headerLength > mtu {
            vs_add_relaxed_u64(&counters.pointee.tooBig, 1)
            pool.release(address)
            return
        }
        vs_add_relaxed_u64(&counters.pointee.encapsulated, 1)
        vs_add_relaxed_u64(&self.counters[port.index].txPackets, 1)
        vs_add_relaxed_u64(&self.counters[port.index].txBytes, UInt64(length))
        if captureTaps != 0 { publishCaptured(taps: captureTaps) }
        let outerAddress = UInt64(start - base)
        let egress = hop.pointee.egressPort
        let bridge = hop.pointee.egressBridge
        if bridge == .unbridged {
            if hop.pointee.parameters.offloadUDPChecksum {
                // The outer IPv6 UDP checksum field holds the pseudo-header sum; the device (or the
                // kernel, in copy mode) completes it from the TX metadata in front of the frame.
                requestChecksum(frame: start, start: LISP.ipv6UDPChecksumStart, offset: LISP.udpChecksumOffset)
                stage(port: egress, address: outerAddress, length: UInt32(outerLength), options: UInt32(VS_XDP_TX_METADATA))
            } else {
                stage(port: egress, address: outerAddress, length: UInt32(outerLength))
            }
            return
        }
        // The route leaves by a bridge's internal port: the frame enters that bridge as if the host
        // had sent it (as the kernel would have, in OVS): no tunnel metadata, one level deeper.
        vs_add_relaxed_u64(&self.counters[egress.index].rxPackets, 1)
        vs_add_relaxed_u64(&self.counters[egress.index].rxBytes, UInt64(outerLength))
        let egressTaps = ports[egress.index].captureRx
        if egressTaps != 0 { captureFrame(address: outerAddress, length: UInt32(outerLength), direction: .rx, taps: egressTaps) }
        if traceHandoffs != nil {
            // A trace runs the re-entering packet as a stage of its own (Worker+Trace.swift).
            traceHandOff(TraceHandoff(kind: .reentered, lispPort: port, address: outerAddress, length: UInt32(outerLength),
                                      inPort: egress, bridge: bridge, context: PacketContext(depth: context.depth &+ 1)))
            return
        }
        process(address: outerAddress, length: UInt32(outerLength), inPort: egress, bridge: bridge,
                context: PacketContext(depth: context.depth &+ 1))
    }

    /// Writes AF_XDP TX metadata asking for an L4 checksum over `frame[start...]`, stored at
    /// `start + offset`. The metadata room in front of every frame is reserved (see UmemArea).
    @inline(__always)
    func requestChecksum(frame: UnsafeMutableRawPointer, start: Int, offset: Int) {
        let metadata = (frame - UmemArea.txMetadataRoom).assumingMemoryBound(to: vs_xsk_tx_metadata.self)
        metadata.pointee.flags = UInt64(VS_XDP_TXMD_FLAGS_CHECKSUM)
        metadata.pointee.request.csum_start = UInt16(truncatingIfNeeded: start)
        metadata.pointee.request.csum_offset = UInt16(truncatingIfNeeded: offset)
    }
}
