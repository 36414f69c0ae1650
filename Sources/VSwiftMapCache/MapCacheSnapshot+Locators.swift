import VSwiftPacket

extension MapCacheSnapshot {
    /// Calls `body` with the instance id and address of every locator of every positive entry,
    /// chosen or not (down, priority 255, outweighed): each is an RLOC of the remote site, so
    /// LISP from it is from the site the mapping system names (the datapath's decapsulation
    /// trust, DESIGN.md "Trust boundary: LISP decapsulation"). Control side; allocates nothing.
    public func forEachLocator(_ body: (_ instanceID: UInt32, _ address: IPAddress) -> Void) {
        for (index, prefix) in prefixes.enumerated() {
            let record = records[index]
            for i in 0..<Int(record.locatorCount) { body(prefix.instanceID, locators[Int(record.locatorStart) + i]) }
        }
    }
}

extension MapCacheSnapshot {
    /// Whether `entry` (an `.encapsulate` one) sends every flow to one RLOC, so a worker may keep
    /// that RLOC per destination instead of choosing per flow.
    @inline(__always)
    public func hasSingleLocator(_ entry: Int32) -> Bool { records[Int(entry)].selectionCount == 1 }
}
