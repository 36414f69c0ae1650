/// Byte-exact messages written by hand from the figures of RFC 9301 §5 and RFC 8060 §4.1, field by
/// field (not produced by the code under test). HMACs and checksums were computed independently
/// with Python's hmac/hashlib and a one-line RFC 1071 sum, and pasted.
enum Vectors {
    /// Hex digits with white space and `#` comments (to the end of the line) between them.
    static func hex(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        var pending: UInt8?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            for c in code where !c.isWhitespace {
                guard let d = c.hexDigitValue else { fatalError("not hex: \(c)") }
                if let p = pending {
                    out.append(p << 4 | UInt8(d))
                    pending = nil
                } else {
                    pending = UInt8(d)
                }
            }
        }
        precondition(pending == nil, "odd number of hex digits")
        return out
    }

    /// RFC 9301 §5.2: an SMR-invoked Map-Request for 10.2.0.0/24 from 10.1.0.1, reply to 192.0.2.1.
    static let mapRequestSMRInvoked = hex("""
        10 40 00 01                 # Type=1, s (SMR-invoked, bit 9), IRC=0 (one ITR-RLOC), Record Count=1
        01 02 03 04 05 06 07 08     # Nonce
        00 01  0a 01 00 01          # Source-EID-AFI=1, 10.1.0.1
        00 01  c0 00 02 01          # ITR-RLOC-AFI=1, 192.0.2.1
        00 18  00 01 0a 02 00 00    # Reserved, EID mask-len=24, EID-Prefix-AFI=1, 10.2.0.0
        """)

    /// RFC 9301 §5.2 with every optional part: an RLOC-probe (P) with M, L and D set, no source EID,
    /// two ITR-RLOCs (IPv4 and IPv6), an instance-id IPv6 EID record (RFC 8060 §4.1), and the
    /// requester's own mapping as the Map-Reply Record.
    static let mapRequestProbe = hex("""
        16 00 61 01                 # Type=1, M (bit 5), P (bit 6); L (bit 17), D (bit 18), IRC=1; Record Count=1
        de ad be ef 00 00 00 01     # Nonce
        00 00                       # Source-EID-AFI=0: no source EID
        00 01  c0 00 02 01          # ITR-RLOC 1: AFI=1, 192.0.2.1
        00 02  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01   # ITR-RLOC 2: AFI=2, 2001:db8::1
        00 40                       # Reserved, EID mask-len=64
        40 03  00 00  02 00  00 16  # AFI=16387 (LCAF), Rsvd1, Flags, Type=2 (Instance ID), IID mask-len=0, Length=22
        00 00 03 e8                 # Instance ID 1000
        00 02  20 01 0d b8 00 02 00 00 00 00 00 00 00 00 00 00   # AFI=2, 2001:db8:2::
        00 00 05 a0                 # Map-Reply Record: Record TTL=1440 minutes
        01 40  10 00                # Locator Count=1, EID mask-len=64, ACT=0, A=1
        00 00                       # Rsvd, Map-Version Number=0
        40 03  00 00  02 00  00 16  00 00 03 e8                  # LCAF Instance ID 1000, Length=22
        00 02  20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 00   # AFI=2, 2001:db8:1::
        01 64 ff 00                 # Priority=1, Weight=100, M Priority=255, M Weight=0
        00 05                       # Unused Flags, L=1, p=0, R=1
        00 01  c0 00 02 01          # Loc-AFI=1, 192.0.2.1
        """)

    /// RFC 9301 §5.4: a Map-Reply (E set) for [1000]10.2.0.0/24, map-version 42, with an IPv4 RLOC
    /// (reachable) and an IPv6 RLOC (not reachable, priority 2).
    static let mapReply = hex("""
        24 00 00 01                 # Type=2, E (bit 5), Record Count=1
        01 02 03 04 05 06 07 08     # Nonce (the Map-Request's)
        00 00 05 a0                 # Record TTL=1440
        02 18  10 00                # Locator Count=2, EID mask-len=24, ACT=0, A=1
        00 2a                       # Rsvd, Map-Version Number=42
        40 03  00 00  02 00  00 0a  # LCAF, Type=2, Length=10
        00 00 03 e8  00 01 0a 02 00 00                           # IID 1000, AFI=1, 10.2.0.0
        01 32 ff 00  00 01          # Priority=1, Weight=50, M 255/0; R=1
        00 01  c0 00 02 02          # 192.0.2.2
        02 32 ff 00  00 00          # Priority=2, Weight=50, M 255/0; R=0
        00 02  20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 02   # 2001:db8::2
        """)

    /// RFC 9301 §5.4: a negative Map-Reply for 10.3.0.0/16 with ACT `act` (0...7).
    static func negativeMapReply(act: UInt8) -> [UInt8] {
        hex("""
            20 00 00 01                 # Type=2, Record Count=1
            01 02 03 04 05 06 07 08     # Nonce
            00 00 00 0f                 # Record TTL=15
            00 10                       # Locator Count=0 (negative), EID mask-len=16
            """) + [act << 5 | 0x10, 0x00] // ACT (3 bits), A=1, Reserved
            + hex("""
            00 00                       # Rsvd, Map-Version Number=0
            00 01  0a 03 00 00          # AFI=1, 10.3.0.0
            """)
    }

    /// The HMAC key of the authentication vectors ("vswift-key" as bytes).
    static let key: [UInt8] = Array("vswift-key".utf8)

    /// RFC 9301 §5.6: a Map-Register with I and M set, key id 1 and a 20-byte HMAC-SHA-1 (as deployed
    /// implementations send it), one record [1000]10.1.0.0/16 -> 192.0.2.1, xTR-ID 0x10...1f, site-ID 7.
    static let mapRegister = hex("""
        32 00 01 01                 # Type=3, I (bit 6); M (bit 23, want-map-notify); Record Count=1
        11 22 33 44 55 66 77 88     # Nonce
        00 01  00 14                # Key ID=1 (HMAC-SHA-1-96), Authentication Data Length=20
        03 48 ba 8c 39 c5 88 32 ac 68 5d 3f 26 34 da a6 60 5f 32 70   # HMAC-SHA1("vswift-key", message with this zeroed)
        00 00 05 a0                 # Record TTL=1440
        01 10  10 00                # Locator Count=1, EID mask-len=16, ACT=0, A=1
        00 00                       # Map-Version 0
        40 03  00 00  02 00  00 0a  00 00 03 e8  00 01 0a 01 00 00   # [1000] 10.1.0.0
        01 64 ff 00  00 01          # Priority=1, Weight=100, M 255/0, R=1
        00 01  c0 00 02 01          # 192.0.2.1
        10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d 1e 1f              # xTR-ID
        00 00 00 00 00 00 00 07     # site-ID
        """)

    /// The MAC of the same Map-Register for the other key id / length combinations (each computed
    /// over the message with a zeroed field of that length).
    static let sha1Truncated = hex("eb 25 fb 47 0c fd e2 61 00 7e c4 c0")
    static let sha256Full = hex("""
        f7 c5 cf 1f 99 f8 29 ce 37 b5 56 c7 6a cc 53 4e 37 9a 2a bb e9 3e 1c b4 72 f5 20 7a fa 68 73 7f
        """)
    static let sha256Truncated = hex("ce fa 49 3d 66 85 1b cc fa fa bf 0e 8c 45 e6 f6")

    /// The body of `mapRegister` after its first word: nonce, key id, auth data, record, xTR-ID/site-ID.
    static var registerBody: [UInt8] { Array(mapRegister[4...]) }

    /// RFC 9301 §5.7: a Map-Notify echoing the register (I set: bit 4 = 0x08, as OOR/tcpdump read it).
    static var mapNotify: [UInt8] { hex("48 00 00 01") + registerBody }

    /// RFC 9301 §5.7: a Map-Notify-Ack (type 5) with the same body.
    static var mapNotifyAck: [UInt8] { hex("58 00 00 01") + registerBody }

    /// RFC 9301 §5.8: `mapRequestSMRInvoked` in an ECM, inner IPv4 10.1.0.1 -> 10.2.0.5.
    static var ecmIPv4: [UInt8] {
        hex("""
            80 00 00 00                 # Type=8, S=D=E=M=0
            45 00 00 3c  00 00 00 00    # IPv4, IHL=5, TOS 0, Total Length=60; ID 0, no fragments
            40 11 66 a9                 # TTL=64, protocol=17 (UDP), header checksum
            0a 01 00 01  0a 02 00 05    # 10.1.0.1 -> 10.2.0.5
            c0 00 10 f6  00 28 24 29    # UDP 49152 -> 4342, length 40, checksum
            """) + mapRequestSMRInvoked
    }

    /// RFC 9301 §5.8: the same Map-Request in an ECM over IPv6, 2001:db8:1::1 -> 2001:db8:2::5.
    static var ecmIPv6: [UInt8] {
        hex("""
            80 00 00 00                 # Type=8
            60 00 00 00  00 28 11 40    # IPv6, payload length 40, next header 17, hop limit 64
            20 01 0d b8 00 01 00 00 00 00 00 00 00 00 00 01   # 2001:db8:1::1
            20 01 0d b8 00 02 00 00 00 00 00 00 00 00 00 05   # 2001:db8:2::5
            c0 00 10 f6  00 28 dc b6    # UDP 49152 -> 4342, length 40, checksum
            """) + mapRequestSMRInvoked
    }

    /// Every valid vector, by name.
    static var all: [(String, [UInt8])] {
        [("mapRequestSMRInvoked", mapRequestSMRInvoked), ("mapRequestProbe", mapRequestProbe),
         ("mapReply", mapReply), ("negativeMapReply", negativeMapReply(act: 3)), ("mapRegister", mapRegister),
         ("mapNotify", mapNotify), ("mapNotifyAck", mapNotifyAck), ("ecmIPv4", ecmIPv4), ("ecmIPv6", ecmIPv6)]
    }
}
