/// Every counter the xTR control plane keeps, in one list: `show-lisp`'s text, its JSON and the
/// metrics export all iterate `ControlCounter.allCases`, so a name exists in all three or in none.
/// Names are fixed (they are metric label values and JSON keys): append, never rename.
public enum ControlCounter: Int, CaseIterable, Sendable {
    // Sent (one per datagram returned to the I/O side).
    case sentMapRegister
    /// Map-Requests to a map-resolver (ECM), first attempts, retries, refreshes and SMR-invoked.
    case sentMapRequest
    case sentMapReply
    case sentMapNotifyAck

    // Received and accepted.
    /// A Map-Notify acknowledging our current Map-Register (RFC 9301 §5.7).
    case receivedMapNotify
    /// An authenticated Map-Notify that acknowledges nothing we sent: the map-server's own
    /// notification (RFC 9301 §5.7 leaves it to RFC 9437), answered with a Map-Notify-Ack.
    case receivedUnsolicitedMapNotify
    case receivedMapReply
    /// A Map-Request for one of our EIDs (plain, or in an ECM from the map-server), answered.
    case receivedMapRequest
    /// A Map-Request with the P bit (RLOC-probe, RFC 9301 §5.2, §7.1), answered with P set.
    case receivedRLOCProbe
    /// A Map-Request with the S bit (SMR, RFC 9301 §6.1).
    case receivedSMR

    // Refused, by reason.
    /// The codec refused it (truncated, trailing bytes, bad LCAF, bad inner header, ...).
    case refusedMalformed
    /// A message type an xTR does not take (Map-Register, Map-Notify-Ack) or does not speak.
    case refusedUnknownType
    /// Map-Notify: no key for its sender, wrong key id, wrong length or bad HMAC (RFC 9301 §5.7).
    case refusedAuthentication
    /// Map-Notify acknowledging a Map-Register we already replaced (a stale nonce).
    case refusedNonce
    /// Map-Reply whose nonce matches no pending Map-Request (RFC 9301 §5.3: a successful Map-Reply "has a nonce that matches an outstanding Map-Request nonce").
    case refusedUnsolicited
    /// Map-Request for EIDs that are not ours.
    case refusedNotOurEID
    /// Map-Reply record that does not cover the EID asked (RFC 9301 §5.5): not installed.
    case refusedEIDNotRequested
    /// A record or request whose addresses the map-cache cannot hold (an LCAF other than the
    /// instance id, a locator set with no IP address, an instance id over 24 bits).
    case refusedUnsupportedAddress
    /// Map-Request with no ITR-RLOC we can answer to (no IPv4/IPv6 address).
    case refusedNoITRRLOC
    /// Over a rate: Map-Replies/Acks past the per-second budget, misses past one per prefix per
    /// second (RFC 9301 §5.3).
    case refusedRateLimited
    /// A bounded table was full (pending Map-Requests, the limiter's destinations, the map-cache).
    case refusedTableFull
    /// A miss or refresh with no map-resolver, or no local RLOC to put in ITR-RLOCs.
    case refusedNotConfigured
    /// A Map-Request that no map-resolver answered after every retry.
    case refusedTimeout
    /// Solicit-Map-Requests sent to the sites in our map-cache after our own mapping changed
    /// (RFC 9301 §6.1). (Appended: the list's order is its raw values.)
    case sentSMR
    /// A Map-Reply of ours that could not carry every record answering the request in one
    /// datagram (`RecordBatching.maxPayload`): the records past the first that fit were left out.
    /// (Appended.)
    case truncatedMapReply
    /// A Map-Notify whose Key ID or Algorithm ID (RFC 9301 §5.6–5.7) is not the map-server's:
    /// it names a secret or an algorithm we did not register with. (Appended.)
    case refusedKeyID
    /// A Map-Reply (§5.4) or an SMR (§6.1) not sent: its destination RLOC had its share
    /// (RFC 9301 RECOMMENDS one every 3 seconds; `DestinationRateLimit`). (Appended.)
    case refusedDestinationRateLimited
    /// Map-Registers withdrawing records (Record TTL 0, RFC 9301 §5.6, §8.2): a local EID removed,
    /// a map-server removed, the control plane stopped. (Appended.)
    case sentDeregistration

    public enum Kind: String, Sendable { case sent, received, refused }

    public var kind: Kind {
        switch self {
        case .sentMapRegister, .sentMapRequest, .sentMapReply, .sentMapNotifyAck, .sentSMR, .sentDeregistration: .sent
        case .receivedMapNotify, .receivedUnsolicitedMapNotify, .receivedMapReply, .receivedMapRequest,
             .receivedRLOCProbe, .receivedSMR: .received
        default: .refused
        }
    }

    /// The message name (sent/received) or the reason (refused), as `show-lisp` and the metrics
    /// label print it.
    public var name: String {
        switch self {
        case .sentMapRegister: "map-register"
        case .sentMapRequest: "map-request"
        case .sentMapReply: "map-reply"
        case .sentMapNotifyAck: "map-notify-ack"
        case .receivedMapNotify: "map-notify"
        case .receivedUnsolicitedMapNotify: "map-notify-unsolicited"
        case .receivedMapReply: "map-reply"
        case .receivedMapRequest: "map-request"
        case .receivedRLOCProbe: "rloc-probe"
        case .receivedSMR: "smr"
        case .refusedMalformed: "malformed"
        case .refusedUnknownType: "unknown_type"
        case .refusedAuthentication: "authentication"
        case .refusedNonce: "nonce"
        case .refusedUnsolicited: "unsolicited"
        case .refusedNotOurEID: "not_our_eid"
        case .refusedEIDNotRequested: "eid_not_requested"
        case .refusedUnsupportedAddress: "unsupported_address"
        case .refusedNoITRRLOC: "no_itr_rloc"
        case .refusedRateLimited: "rate_limited"
        case .refusedTableFull: "table_full"
        case .refusedNotConfigured: "not_configured"
        case .refusedTimeout: "timeout"
        case .sentSMR: "smr"
        case .truncatedMapReply: "reply_truncated"
        case .refusedKeyID: "key_id"
        case .refusedDestinationRateLimited: "destination_rate_limited"
        case .sentDeregistration: "deregistration"
        }
    }
}

/// The counters' values, one slot per `ControlCounter` (no dictionary on the update path).
struct ControlCounters {
    private var values = [UInt64](repeating: 0, count: ControlCounter.allCases.count)

    mutating func count(_ counter: ControlCounter, _ n: UInt64 = 1) { values[counter.rawValue] &+= n }

    subscript(_ counter: ControlCounter) -> UInt64 { values[counter.rawValue] }

    /// Every counter of `kind` by name, zeros included (so metric series exist from the start).
    func byName(_ kind: ControlCounter.Kind) -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for counter in ControlCounter.allCases where counter.kind == kind { result[counter.name] = self[counter] }
        return result
    }
}
