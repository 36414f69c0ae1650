// The map-cache's control side with an injected clock (every call takes `now`): TTL expiry and
// RFC 9301 §5.4's special TTLs, refresh of entries in use before their TTL ends, LRU eviction at
// the capacity bound, use marks from the workers, and the Map-Request rate limit of RFC 9301 §5.3.
import Testing
import VSwiftPacket
@testable import VSwiftMapCache

private func ip(_ text: String) -> IPAddress { IPAddress(text)! }
private func prefix(_ text: String, iid: UInt32 = 0) -> EIDPrefix { EIDPrefix(instanceID: iid, text)! }
private let rloc = [Locator(address: IPAddress("192.0.2.1")!, priority: 1, weight: 100)]

/// A sweep, outside `#expect` (which cannot take a mutating call).
private func sweep(_ db: inout MapCacheDatabase, _ now: Double) -> MapCacheSweep { db.sweep(now: now) }

@Suite struct MapCacheDatabaseTests {
    @Test("an entry expires at its TTL whether used or not; TTL 0 removes (RFC 9301 §5.4)")
    func expiry() throws {
        var db = MapCacheDatabase(capacity: 8)
        try db.install(prefix("10.0.0.0/8"), locators: rloc, ttlMinutes: 1, source: .mapReply, now: 1000)
        try db.install(prefix("10.1.0.0/16"), locators: rloc, ttlMinutes: 2, source: .mapReply, now: 1000)
        try db.install(prefix("10.2.0.0/16"), locators: rloc, ttlMinutes: 1, source: .static, now: 1000)
        #expect(sweep(&db, 1059.9).expired == [])
        #expect(sweep(&db, 1060).expired == [prefix("10.0.0.0/8")])
        #expect(sweep(&db, 1120).expired == [prefix("10.1.0.0/16")])
        // Static entries never expire.
        #expect(sweep(&db, 1e9).expired == [])
        #expect(db.count == 1)
        // A Record TTL of 0: the entry MUST be removed at once.
        try db.install(prefix("10.3.0.0/16"), locators: rloc, ttlMinutes: 5, source: .mapReply, now: 1000)
        try db.install(prefix("10.3.0.0/16"), locators: rloc, ttlMinutes: 0, source: .mapReply, now: 1001)
        #expect(db.entry(prefix("10.3.0.0/16")) == nil)
        // 0xffffffff: the recipient decides (a day).
        try db.install(prefix("10.4.0.0/16"), locators: rloc, ttlMinutes: .max, source: .mapReply, now: 0)
        #expect(db.entry(prefix("10.4.0.0/16"))?.expiresAt == 86_400)
    }

    @Test("an entry in use is refreshed from refreshLead before expiry, once per second, until a new reply")
    func refresh() throws {
        var db = MapCacheDatabase(capacity: 8)
        let p = prefix("10.0.0.0/8")
        try db.install(p, locators: rloc, ttlMinutes: 10, source: .mapReply, now: 0)   // expires at 600
        try db.install(prefix("10.9.0.0/16"), locators: rloc, ttlMinutes: 10, source: .mapReply, now: 0)
        let snapshot = db.snapshot()
        // Used at 500 (the worker marks, the control side absorbs).
        snapshot.markUsed(snapshot.lookup(instanceID: 0, destination: ip("10.1.1.1")))
        db.absorbUse(now: 500)
        #expect(sweep(&db, 539).refresh == [])          // not yet within 60 s of expiry
        #expect(sweep(&db, 540).refresh == [p])         // the unused 10.9/16 is not refreshed
        #expect(sweep(&db, 540.5).refresh == [])        // at most once a second
        #expect(sweep(&db, 541).refresh == [p])
        #expect(db.entry(p)?.refreshAttempts == 2)
        // The Map-Reply comes: fresh again with a new TTL, use history kept.
        try db.install(p, locators: rloc, ttlMinutes: 10, source: .mapReply, now: 542)
        #expect(db.entry(p)?.refreshAttempts == 0)
        #expect(db.entry(p)?.lastUsed == 500)
        #expect(sweep(&db, 600).expired == [prefix("10.9.0.0/16")])
        // Not used since 500: past the 60 s activity window, so not refreshed again; it expires.
        #expect(sweep(&db, 1100).refresh == [])
        #expect(sweep(&db, 1142).expired == [p])
    }

    @Test("a short TTL is refreshed in its second half (the lead is at most half the TTL)")
    func shortTTL() throws {
        var db = MapCacheDatabase(capacity: 2)
        let p = prefix("2001:db8::/32", iid: 5)
        try db.install(p, locators: rloc, ttlMinutes: 1, source: .mapReply, now: 0)
        let snapshot = db.snapshot()
        snapshot.markUsed(snapshot.lookup(instanceID: 5, destination: ip("2001:db8::1")))
        db.absorbUse(now: 10)
        #expect(sweep(&db, 29).refresh == [])
        #expect(sweep(&db, 30).refresh == [p])
    }

    @Test("the cache is bounded: the least recently used entry is evicted; static ones never")
    func lruBound() throws {
        var db = MapCacheDatabase(capacity: 3)
        let a = prefix("10.0.0.0/24"), b = prefix("10.0.1.0/24"), c = prefix("10.0.2.0/24"), d = prefix("10.0.3.0/24")
        try db.install(a, locators: rloc, ttlMinutes: 10, source: .mapReply, now: 0)
        try db.install(b, locators: rloc, ttlMinutes: 10, source: .mapReply, now: 1)
        try db.install(c, locators: rloc, ttlMinutes: 10, source: .mapReply, now: 2)
        #expect(db.leastRecentlyUsed == [a, b, c])
        // A worker uses a: b is now the least recently used.
        let snapshot = db.snapshot()
        snapshot.markUsed(snapshot.lookup(instanceID: 0, destination: ip("10.0.0.7")))
        db.absorbUse(now: 3)
        #expect(db.leastRecentlyUsed == [b, c, a])
        let evicted = try db.install(d, locators: rloc, ttlMinutes: 10, source: .mapReply, now: 4)
        #expect(evicted == b)
        #expect(db.count == 3)
        #expect(db.entry(b) == nil)
        // Replacing an entry evicts nothing.
        let none = try db.install(c, locators: rloc, ttlMinutes: 10, source: .mapReply, now: 5)
        #expect(none == nil)
        // Static entries fill the cache: nothing left to evict.
        var full = MapCacheDatabase(capacity: 2)
        try full.install(a, locators: rloc, ttlMinutes: 1, source: .static, now: 0)
        try full.installNegative(b, action: .drop, ttlMinutes: 1, source: .static, now: 0)
        #expect(throws: MapCacheError.full(capacity: 2)) {
            try full.install(c, locators: rloc, ttlMinutes: 1, source: .mapReply, now: 0)
        }
        #expect(full.leastRecentlyUsed == [])
    }

    @Test("a flood of installs keeps the cache at its bound and every snapshot consistent")
    func floodStaysBounded() throws {
        var db = MapCacheDatabase(capacity: 64)
        for i in 0..<1000 {
            try db.install(EIDPrefix(instanceID: UInt32(i % 3), address: IPAddress(ipv4: UInt32(i) << 8), length: 24)!,
                           locators: rloc, ttlMinutes: 10, source: .mapReply, now: Double(i))
            #expect(db.count == min(i + 1, 64))
        }
        let snapshot = db.snapshot()
        #expect(snapshot.count == 64)
        // The newest 64 are there, each found by its own address.
        for i in 936..<1000 {
            let entry = snapshot.lookup(instanceID: UInt32(i % 3), destination: IPAddress(ipv4: UInt32(i) << 8 | 1))
            #expect(snapshot.action(of: entry) == .encapsulate)
        }
        #expect(snapshot.lookup(instanceID: 0, destination: IPAddress(ipv4: 0 << 8 | 1)) == -1)
        #expect(throws: MapCacheError.tooManyLocators(256)) {
            try db.install(prefix("10.0.0.0/8"), locators: Array(repeating: rloc[0], count: 256), ttlMinutes: 1, source: .mapReply, now: 0)
        }
    }

    @Test("locator status changes reach the next snapshot's RLOC choice")
    func locatorStatus() throws {
        var db = MapCacheDatabase(capacity: 4)
        let p = prefix("10.0.0.0/8")
        let a = ip("192.0.2.1"), b = ip("192.0.2.2")
        try db.install(p, locators: [Locator(address: a, priority: 1, weight: 1), Locator(address: b, priority: 2, weight: 1)],
                       ttlMinutes: 10, source: .mapReply, now: 0)
        var version = db.version
        #expect(db.snapshot().resolve(instanceID: 0, destination: ip("10.0.0.1"), flowHash: 7).rloc == a)
        var changed = db.setLocatorStatus(p, locator: a, isUp: false)
        #expect(changed)
        #expect(db.version != version)
        version = db.version
        changed = db.setLocatorStatus(p, locator: a, isUp: false)
        #expect(changed)
        #expect(db.version == version)   // no change, nothing to publish
        #expect(db.snapshot().resolve(instanceID: 0, destination: ip("10.0.0.1"), flowHash: 7).rloc == b)
        changed = db.setLocatorStatus(p, locator: b, isUp: false)
        #expect(changed)
        #expect(db.snapshot().resolve(instanceID: 0, destination: ip("10.0.0.1"), flowHash: 7).action == .noUsableLocator)
        changed = db.setLocatorStatus(p, locator: ip("192.0.2.9"), isUp: true)
        #expect(!changed)
        changed = db.setLocatorStatus(prefix("11.0.0.0/8"), locator: a, isUp: true)
        #expect(!changed)
    }

    @Test("the report: prefix, iid, RLOCs with priority/weight/status, TTL left, source, action")
    func report() throws {
        var db = MapCacheDatabase(capacity: 4)
        try db.install(prefix("2001:db8::/32", iid: 2), locators: [Locator(address: ip("2001:db8:ffff::1"), priority: 1, weight: 50, isUp: false)],
                       ttlMinutes: 10, source: .mapReply, now: 100)
        try db.installNegative(prefix("10.0.0.0/8", iid: 2), action: .nativelyForward, ttlMinutes: 15, source: .mapReply, now: 100)
        try db.install(prefix("10.1.0.0/16", iid: 1), locators: rloc, ttlMinutes: 1, source: .static, now: 100)
        let report = db.report(now: 160.5)
        #expect(report.map(\.eidPrefix) == ["10.1.0.0/16", "10.0.0.0/8", "2001:db8::/32"])
        #expect(report.map(\.instanceID) == [1, 2, 2])
        #expect(report[0].ttlLeft == nil && report[0].source == "static")
        #expect(report[1].action == "natively-forward" && report[1].ttlLeft == 839 && report[1].rlocs == [])
        #expect(report[2].rlocs == [.init(address: "2001:db8:ffff::1", priority: 1, weight: 50, status: "down")])
        #expect(report[2].ttlLeft == 539 && report[2].idle == 60 && report[2].source == "map-reply")
    }

    // MARK: Map-Request rate limit

    @Test("Map-Requests: one per second per prefix, and after 10 a 30 s wait (RFC 9301 §5.3)")
    func rateLimit() {
        var limiter = MapRequestLimiter(capacity: 16)
        let p = prefix("10.0.0.1/32")
        var sent: [Double] = []
        var now = 0.0
        while now < 45 {
            if limiter.mayRequest(p, now: now) { sent.append(now) }
            now += 0.25
        }
        #expect(sent == Array(0..<10).map(Double.init) + [39, 40, 41, 42, 43, 44])
        // An answer ends the retransmission series (no 30 s wait), not the once-a-second limit.
        limiter.answered(p)
        let tooSoon = limiter.mayRequest(p, now: 44.25), other = limiter.mayRequest(prefix("10.0.0.2/32"), now: 44.25)
        #expect(!tooSoon && other)
        var afterAnswer: [Double] = []
        now = 45
        while now < 56 {
            if limiter.mayRequest(p, now: now) { afterAnswer.append(now) }
            now += 0.25
        }
        #expect(afterAnswer == Array(45..<55).map(Double.init))
    }

    @Test("the limiter's table is bounded: new destinations are refused while it is full of recent ones")
    func limiterBounded() {
        var limiter = MapRequestLimiter(capacity: 4)
        var allowed = 0
        for i in 0..<1000 where limiter.mayRequest(EIDPrefix(instanceID: 0, address: IPAddress(ipv4: UInt32(i)), length: 32)!, now: i < 4 ? 0 : 1) {
            allowed += 1
        }
        #expect(allowed == 4)
        #expect(limiter.count == 4 && limiter.refusedFull == 996)
        // Once the old ones' back-off is over they are forgotten and new ones get in.
        let late = limiter.mayRequest(prefix("10.9.9.9/32"), now: 31)
        #expect(late)
        #expect(limiter.count == 1)
    }
}
