import Testing
import VSwiftClassifier
import VSwiftPacket
@testable import VSwiftFlowCache

/// Ports of the tests: 1, 2, 3 devices; 4 the bridge's tap; 5 a LISP port with a fixed remote and
/// a direct egress; 6 LISP with remote_ip=flow; 7 LISP routed through a bridge; 8 LISP with key=flow;
/// 9 a device with a capture running; 10 a device XDP cannot redirect to (a veth whose peer runs
/// no NAPI); 11 a LISP port XDP decapsulates for (a decap entry), 12 the same with a capture
/// running; LOCAL the internal port; anything else absent.
private func port(_ number: UInt32) -> CachePort {
    switch number {
    case 1, 2, 3: return CachePort(kind: .device)
    case 4, OpenFlowPort.local: return CachePort(kind: .internal)
    case 5: return CachePort(kind: .lisp(.init(fixedRemote: true, keyFromFlow: false, directEgress: true)))
    case 6: return CachePort(kind: .lisp(.init(fixedRemote: false, keyFromFlow: false, directEgress: true)))
    case 7: return CachePort(kind: .lisp(.init(fixedRemote: true, keyFromFlow: false, directEgress: false)))
    case 8: return CachePort(kind: .lisp(.init(fixedRemote: true, keyFromFlow: true, directEgress: true)))
    case 9: return CachePort(kind: .device, capturing: true)
    case 10: return CachePort(kind: .device, redirectTarget: false)
    case 11: return CachePort(kind: .lisp(.init(fixedRemote: true, keyFromFlow: false, directEgress: true, decapInXDP: true)))
    case 12: return CachePort(kind: .lisp(.init(fixedRemote: true, keyFromFlow: false, directEgress: true, decapInXDP: true)),
                              capturing: true)
    default: return CachePort(kind: .absent)
    }
}

private func key(inPort: UInt64 = 1, dlType: UInt64 = 0x0800, ttl: UInt64 = 64) -> FlowKey {
    var key = FlowKey()
    key.set(.inPort, inPort)
    key.set(.dlType, dlType)
    key.set(.nwProto, 6)
    key.set(.nwTTL, ttl)
    return key
}

private func verdict(_ actions: [FlowAction], _ k: FlowKey = key()) -> XDPCacheability.Verdict {
    XDPCacheability.verdict(actions: actions, key: k, port: port)
}

private let noExtra = XDPCacheability.Verdict.cacheable(extraMask: FlowKey())

@Suite struct XDPCacheabilityTests {
    @Test func dropAndOutputToADeviceAreCacheable() {
        #expect(verdict([]) == noExtra)
        #expect(verdict([.output(2)]) == noExtra)
        #expect(verdict([.inPort]) == noExtra)
        // Output to a port that does not exist compiles to nothing: the entry drops.
        #expect(verdict([.output(42)]) == noExtra)
    }

    @Test(arguments: [
        FlowAction.modDlSrc(0x0200_0000_0001), .modDlDst(0x0200_0000_0002), .modNwSrc(0x0a00_0001), .modNwDst(0x0a00_0002),
        .modNwTos(0x20), .modNwEcn(1), .modTpSrc(1), .modTpDst(2), .modVlanVid(10), .modVlanPcp(3), .stripVlan,
        .pushVlan(0x8100), .setField(.dlDst, 1), .setField(.nwSrc, 1), .setField(.tpDst, 1), .setField(.nwTos, 0x20),
        .setField(.vlanTCI, 0x1005), .setSharedField(.ipDscp, 8), .setSharedField(.nwEcn, 2), .setField(.nwTTL, 9),
    ])
    func headerRewritesTheXDPProgramDoesAreCacheable(_ action: FlowAction) {
        #expect(verdict([action, .output(2)]) == noExtra)
    }

    @Test(arguments: [
        FlowAction.setIPv6Src(1, 2), .setIPv6Dst(1, 2), .setField(.ipv6Label, 5), .setField(.arpSha, 1),
        .setSharedField(.arpOp, 2), .setSharedField(.arpSpa, 1), .output(OpenFlowPort.controller), .output(OpenFlowPort.table),
    ])
    func actionsTheXDPProgramLacksAreNot(_ action: FlowAction) {
        #expect(verdict([action, .output(2)]) == .notCacheable(.unsupportedAction))
    }

    @Test func perPacketDecisionsStayOnTheWorkers() {
        #expect(verdict([.normal]) == .notCacheable(.normal))
        #expect(verdict([.flood]) == .notCacheable(.flood))
        #expect(verdict([.all]) == .notCacheable(.flood))
        #expect(verdict([.output(2), .output(3)]) == .notCacheable(.multipleOutputs))
        #expect(verdict([.output(4)]) == .notCacheable(.internalPort))
        #expect(verdict([.local]) == .notCacheable(.internalPort))
    }

    @Test func lispOutputIsCacheableOnlyWithAFixedRemoteAndADirectEgress() {
        #expect(verdict([.modDlDst(1), .output(5)]) == noExtra)
        #expect(verdict([.output(6)]) == .notCacheable(.lispRemoteFromFlow))
        #expect(verdict([.output(7)]) == .notCacheable(.lispIndirectEgress))
        #expect(verdict([.output(5)], key(dlType: 0x0806)) == .notCacheable(.lispNonIP))
        // key=flow reads tun_id: kept in the entry unless the actions set it.
        var tunID = FlowKey()
        tunID.set(.tunId, FlowField.tunId.layout.valueMask)
        #expect(verdict([.output(8)]) == .cacheable(extraMask: tunID))
        #expect(verdict([.setTunnel(5), .output(8)]) == noExtra)
        #expect(verdict([.setField(.tunId, 5), .output(8)]) == noExtra)
    }

    @Test func decTTLKeepsTheTTLAndNeverCachesAnExpiry() {
        var ttl = FlowKey()
        ttl.set(.nwTTL, 0xff)
        #expect(verdict([.decTTL, .output(2)]) == .cacheable(extraMask: ttl))
        #expect(verdict([.decTTL, .output(2)], key(ttl: 1)) == .notCacheable(.decTTLExpires))
        #expect(verdict([.decTTL, .decTTL, .output(2)], key(ttl: 2)) == .notCacheable(.decTTLExpires))
        // A TTL the actions set is known: the frame's own is not read.
        #expect(verdict([.setField(.nwTTL, 5), .decTTL, .output(2)], key(ttl: 1)) == noExtra)
        #expect(verdict([.setField(.nwTTL, 1), .decTTL, .output(2)]) == .notCacheable(.decTTLExpires))
        // Not IP: dec_ttl does nothing.
        #expect(verdict([.decTTL, .output(2)], key(dlType: 0x0806, ttl: 0)) == noExtra)
    }

    @Test func aCaptureOrAnInputThatIsNoDeviceKeepsFramesOnTheWorkers() {
        #expect(verdict([.output(9)]) == .notCacheable(.capture))
        #expect(verdict([.output(2)], key(inPort: 9)) == .notCacheable(.capture))
        #expect(verdict([.output(2)], key(inPort: 4)) == .notCacheable(.inputNotDevice))
        #expect(verdict([.output(2)], key(inPort: 5)) == .notCacheable(.inputNotDevice))
        #expect(verdict([.output(2)], key(inPort: 12)) == .notCacheable(.capture))
    }

    /// A LISP port is an input only where XDP decapsulates for it (DESIGN.md, "LISP decapsulation
    /// in XDP"): its frames are then looked up with in_port = the port.
    @Test func aLISPPortWithADecapEntryIsAnInput() {
        #expect(verdict([.output(2)], key(inPort: 11)) == noExtra)
        #expect(verdict([], key(inPort: 11)) == noExtra)
        #expect(verdict([.normal], key(inPort: 11)) == .notCacheable(.normal))
        // Decapsulated, then encapsulated again toward another site.
        #expect(verdict([.output(5)], key(inPort: 11)) == noExtra)
        #expect(verdict([.output(2)], key(inPort: 8)) == .notCacheable(.inputNotDevice))
    }

    /// XDP_REDIRECT to a device without NETDEV_XDP_ACT_NDO_XMIT is dropped by the kernel
    /// (`__xdp_enqueue`): no entry outputs there, but frames arriving on it may still be cached.
    @Test func anOutputToADeviceThatIsNoRedirectTargetStaysOnTheWorkers() {
        #expect(verdict([.output(10)]) == .notCacheable(.redirectUnsupported))
        #expect(verdict([.modDlDst(2), .output(10)]) == .notCacheable(.redirectUnsupported))
        #expect(verdict([.inPort], key(inPort: 10)) == .notCacheable(.redirectUnsupported))
        #expect(verdict([.output(2)], key(inPort: 10)) == noExtra)
        #expect(verdict([], key(inPort: 10)) == noExtra)
    }
}
