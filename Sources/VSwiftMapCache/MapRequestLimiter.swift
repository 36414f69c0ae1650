/// Rate limit of Map-Requests per destination EID prefix (RFC 9301 §5.3: "Map-Requests MUST be
/// rate limited to 1 per second per EID-prefix. After 10 retransmits without receiving the
/// corresponding Map-Reply, the sender MUST wait 30 seconds.").
///
/// Bounded: at most `capacity` destinations are tracked. When full, entries idle past the
/// back-off are dropped; when none are, a new destination is refused (counted in `refusedFull`),
/// so a flood of packets to random EIDs costs bounded memory and bounded Map-Requests.
public struct MapRequestLimiter: Sendable {
    public struct Timers: Sendable {
        public var interval: Double = 1
        public var retransmits = 10
        public var backOff: Double = 30
        public init() {}
    }

    struct State {
        var lastSent: Double
        /// Requests sent since the last answer (or back-off).
        var sent: Int
    }

    public let capacity: Int
    public let timers: Timers
    private var states: [EIDPrefix: State] = [:]
    private var lastPrune = -Double.infinity
    /// Requests refused because the table was full of recent destinations.
    public private(set) var refusedFull = 0

    public init(capacity: Int, timers: Timers = Timers()) {
        precondition(capacity >= 1)
        self.capacity = capacity
        self.timers = timers
        states.reserveCapacity(capacity)
    }

    public var count: Int { states.count }

    /// Whether a Map-Request for `destination` may be sent at `now`; when it may, it is recorded
    /// as sent.
    public mutating func mayRequest(_ destination: EIDPrefix, now: Double) -> Bool {
        if var state = states[destination] {
            if state.sent >= timers.retransmits {
                guard now - state.lastSent >= timers.backOff else { return false }
                state.sent = 0
            } else {
                guard now - state.lastSent >= timers.interval else { return false }
            }
            state.lastSent = now
            state.sent += 1
            states[destination] = state
            return true
        }
        if states.count >= capacity {
            // Forget destinations whose back-off is over (they would be allowed anyway), at most
            // once per interval: a flood of new destinations must not cost a scan each.
            if now - lastPrune >= timers.interval {
                lastPrune = now
                states = states.filter { now - $0.value.lastSent < timers.backOff }
            }
            guard states.count < capacity else {
                refusedFull += 1
                return false
            }
        }
        states[destination] = State(lastSent: now, sent: 1)
        return true
    }

    /// The earliest time `mayRequest` would allow `destination` (the interval after the last
    /// request, or the back-off after ten); nil when it is not tracked (allowed, if there is room).
    /// For callers that must not lose a request the limit holds back (an SMR, RFC 9301 §6.1).
    public func allowedAt(_ destination: EIDPrefix) -> Double? {
        guard let state = states[destination] else { return nil }
        return state.lastSent + (state.sent >= timers.retransmits ? timers.backOff : timers.interval)
    }

    /// A Map-Reply answered `destination`: the retransmission series is over (no 30 s back-off
    /// is due), but the once-a-second limit still holds — RFC 9301 §5.3 puts it on the EID-prefix,
    /// answered or not. Forgetting the prefix here let a site whose packets keep arriving from an
    /// RLOC its mapping does not name (OpenOverlayRouter after an address change, still sending
    /// from the old one) make us ask about the same source EID at every packet.
    public mutating func answered(_ destination: EIDPrefix) {
        states[destination]?.sent = 0
    }
}
