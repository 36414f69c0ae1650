import VSwiftClassifier
import VSwiftPacket

/// The worker's part of the XDP flow cache: hand the keys its exact-match cache missed to the
/// installer (DESIGN.md, "Megaflows and revalidation"). One ring slot per miss, written in place;
/// the installer recomputes the entry, so the worker does no megaflow work. Worker thread only.
extension Worker {
    /// Pushes the keys of the `misses` frames the cache missed in the rx burst slots from `first`
    /// (their positions are `cache.burstMissIndices`), with the table's version. A table that
    /// looks at the link layer only had short keys extracted: the frame's whole key is extracted
    /// here (XDP extracts whole keys). A full ring drops the rest (each counted by the ring) and
    /// the exact-match cache forgets them, so their flows' next frames miss and ask again: a
    /// dropped request must not leave a flow on the workers' path for as long as it stays in the
    /// exact-match cache (at 60,000 new flows at once, most of them).
    @inline(never)
    func requestFlowCacheEntries(_ table: CompiledFlowTable, first: Int, misses: Int, inPort: PortSlot, bridge: BridgeSlot) {
        let indices = cache.burstMissIndices
        let ofport = ports[inPort.index].ofport.rawValue
        let version = table.classifier.version
        for m in 0..<misses {
            let i = first &+ Int(indices[m])
            guard let slot = flowCacheRequests.reserve() else {
                flowCacheRequests.noteRefused(misses &- m)
                for r in m..<misses { cache.forget(burst.keys + (first &+ Int(indices[r])), in: table.classifier) }
                return
            }
            if table.linkLayerOnly {
                withUnsafeMutablePointer(to: &slot.pointee.key) { key in
                    FlowExtractor.extract(base + Int(burst.addresses[i]), length: Int(burst.lengths[i]), inPort: ofport, into: key)
                }
            } else {
                slot.pointee.key = burst.keys[i]
            }
            slot.pointee.version = version
            slot.pointee.bridge = bridge.rawValue
            flowCacheRequests.commit()
        }
    }
}

extension Worker {
    /// Pushes the key of a frame this worker decapsulated (in_port = its LISP port, the tunnel
    /// words from the outer headers) that the exact-match cache missed: the XDP programs look the
    /// same inner frame up with the same key (bpf/vswift_decap.h `vsdc_inner`), so its entry can
    /// serve the next ones in XDP. The installer refuses it unless the port has a decap entry
    /// (`XDPCacheability`, `inputNotDevice`). A full ring drops it (counted) and the exact-match
    /// cache forgets it, as for a device port's misses.
    @inline(never)
    func requestFlowCacheEntry(decapsulated key: UnsafePointer<FlowKey>, _ table: CompiledFlowTable, bridge: BridgeSlot) {
        guard let slot = flowCacheRequests.reserve() else {
            flowCacheRequests.noteRefused(1)
            cache.forget(key, in: table.classifier)
            return
        }
        slot.pointee.key = key.pointee
        slot.pointee.version = table.classifier.version
        slot.pointee.bridge = bridge.rawValue
        flowCacheRequests.commit()
    }
}

extension Worker {
    /// Forgets the keys the installer sent back (`flowCacheForgets`: hand-overs it lost or refused
    /// for a reason that may not recur), so each flow's next frame misses and is handed over
    /// again. Once per round, never per packet; at most a ring's worth.
    ///
    /// Only an entry of the version the key was classified with is forgotten, and only while that
    /// version is still the bridge's table here: the exact-match cache tags entries with the
    /// table version, so an entry of an older version is dead already (its flow misses under the
    /// new table and asks again by itself), and a key of an older version must not take out the
    /// flow's entry of the current one (a miss and a duplicate hand-over for nothing). A bridge
    /// slot out of range or without a flow table here has nothing to forget.
    @inline(never)
    func forgetLostHandOvers() {
        _ = flowCacheForgets.drain(limit: FlowCacheKeyRing.capacity) { request in
            guard request.bridge >= 0, request.bridge < DatapathLimits.maxBridges,
                  let table = bridges[Int(request.bridge)].flowTable else { return }
            table._withUnsafeGuaranteedRef { table in
                guard table.classifier.version == request.version else { return }
                var key = request.key
                cache.forget(&key, in: table.classifier)
            }
        }
    }
}
