import VSwiftPacket

/// One mask slot of the XDP flow cache as the program reads it (`struct vswift_fc_mask`,
/// bpf/vswift_flowcache.h): the mask, its shape filter and its size class.
///
/// Why a size class: the kernel's hash map hashes its whole key, so probing a 136-byte
/// (slot, masked FlowKey) per mask cost ~80 ns. A mask that names at most 2 words probes
/// (slot, those 2 masked words) — 24 bytes — and one naming at most 6 words a 56-byte key; only
/// wider masks use the full key. Each class has its own hash map (`vswift_fc_table2`,
/// `vswift_fc_table6`, `vswift_fc_table`); a slot's entries all live in its class's map.
///
/// Why a shape filter: most masks of a cache carry in_port and dl_type, and a miss on a port or
/// protocol a slot has no entry for should not pay a probe. Bit `shapeBit(...)` of the slot's 256
/// is set while the slot holds an entry with that signature (masked in_port, dl_type, VLAN TCI,
/// nw_proto); a frame whose bit is clear cannot match any entry of the slot (its masked words
/// differ from each entry's), so the program skips the slot. False positives only cost a probe.
struct XDPFlowCacheMask {
    static let size = 224
    static let smallClass = 2, largeClass = 6, fullClass = FlowKey.wordCount

    let mask: FlowKey
    /// The words the mask names (non-zero), in order.
    let words: [Int]
    let sizeClass: Int
    /// Entries per shape bit (the bit is set while its count is non-zero).
    private(set) var shapeCounts = [UInt32](repeating: 0, count: 256)

    /// Without the shape filter every bit is set (every slot probed).
    let shapeFilter: Bool

    /// `compactKeys: false` and `shapeFilter: false` give the first structure (every mask probed
    /// with the full key), kept for the bench's comparison.
    init(_ mask: FlowKey, compactKeys: Bool = true, shapeFilter: Bool = true) {
        self.mask = mask
        self.shapeFilter = shapeFilter
        words = (0..<FlowKey.wordCount).filter { mask[word: $0] != 0 }
        sizeClass = !compactKeys ? Self.fullClass
            : words.count <= Self.smallClass ? Self.smallClass
            : words.count <= Self.largeClass ? Self.largeClass : Self.fullClass
    }

    /// `vsfc_shape_bit`: the filter bit of a key whose masked words 0 and 1 are these.
    static func shapeBit(maskedWord0 w0: UInt64, maskedWord1 w1: UInt64) -> Int {
        Int(((w0 ^ (((w1 >> 48) & 0xff) << 24)) &* 0x9e37_79b9_7f4a_7c15) >> 56)
    }

    func shapeBit(masked: FlowKey) -> Int {
        Self.shapeBit(maskedWord0: masked[word: 0], maskedWord1: masked[word: 1])
    }

    /// Counts an entry with `bit`; true when the bit became set (the slot must be rewritten).
    mutating func addShape(_ bit: Int) -> Bool {
        shapeCounts[bit] += 1
        return shapeCounts[bit] == 1
    }

    /// Uncounts an entry with `bit`; true when the bit became clear.
    mutating func removeShape(_ bit: Int) -> Bool {
        guard shapeCounts[bit] > 0 else { return false }
        shapeCounts[bit] -= 1
        return shapeCounts[bit] == 0
    }

    /// The bytes of `struct vswift_fc_mask`.
    var bytes: [UInt8] {
        var bytes = [UInt8](repeating: 0, count: Self.size)
        bytes.withUnsafeMutableBytes { raw in
            for w in 0..<FlowKey.wordCount { raw.storeBytes(of: mask[word: w], toByteOffset: 8 * w, as: UInt64.self) }
            for q in 0..<4 {
                var bits: UInt64 = 0
                for b in 0..<64 where shapeCounts[64 * q + b] > 0 || !shapeFilter { bits |= 1 << UInt64(b) }
                raw.storeBytes(of: bits, toByteOffset: 128 + 8 * q, as: UInt64.self)
            }
            if sizeClass != Self.fullClass {
                for (i, w) in words.enumerated() {
                    raw.storeBytes(of: mask[word: w], toByteOffset: 160 + 8 * i, as: UInt64.self)
                    raw[208 + i] = UInt8(w)
                }
            }
            raw.storeBytes(of: UInt32(sizeClass), toByteOffset: 216, as: UInt32.self)
        }
        return bytes
    }

    /// The key of an entry (`masked`: key & mask) in its class's hash map.
    func tableKey(slot: Int, masked: FlowKey) -> [UInt8] {
        let count = sizeClass == Self.fullClass ? FlowKey.wordCount : sizeClass
        var bytes = [UInt8](repeating: 0, count: 8 + 8 * count)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: UInt32(slot), toByteOffset: 0, as: UInt32.self)
            if sizeClass == Self.fullClass {
                for w in 0..<FlowKey.wordCount { raw.storeBytes(of: masked[word: w], toByteOffset: 8 + 8 * w, as: UInt64.self) }
            } else {
                for (i, w) in words.enumerated() { raw.storeBytes(of: masked[word: w], toByteOffset: 8 + 8 * i, as: UInt64.self) }
            }
        }
        return bytes
    }
}
