import Foundation
import Logging
import Testing
import VSwiftTesting
import VSwiftPacket
import VSwiftProtocol
@testable import VSwiftControl

/// The LISP control configuration through the control methods: validation, duplicates, bounds,
/// persistence (and files from before it existed), and keys that never come back out.
@Suite struct LISPConfigTests {
    static let key = "s3cr3t-Key"

    func addServer(_ h: Harness, _ address: String = "192.0.2.1", keyID: Int64? = nil) async -> Result<JSONValue, RPCError> {
        var params: [String: JSONValue] = ["address": .string(address), "key": .string(Self.key)]
        if let keyID { params["key_id"] = .int(keyID) }
        return await h.call("add-map-server", params)
    }

    func eid(_ iid: Int64, _ prefix: String, _ rlocs: [[String: JSONValue]]? = nil) -> [String: JSONValue] {
        var params: [String: JSONValue] = ["instance_id": .int(iid), "prefix": .string(prefix)]
        if let rlocs { params["rlocs"] = .array(rlocs.map { .object($0) }) }
        return params
    }

    func message(_ result: Result<JSONValue, RPCError>) -> String? {
        if case .failure(let error) = result { return error.message }
        return nil
    }

    @Test func validationRefusesWithClearErrors() async throws {
        let h = Harness()
        #expect(message(await addServer(h, "192.0.2.300"))?.contains("\"192.0.2.300\" is not an IPv4 or IPv6 address") == true)
        #expect(message(await addServer(h, "224.0.0.1"))?.contains("is not a unicast address") == true)
        #expect(message(await addServer(h, "::"))?.contains("is not a unicast address") == true)
        #expect(message(await addServer(h, keyID: 0))?.contains("key id 0 is not supported") == true)
        #expect(message(await addServer(h, keyID: 3))?.contains("key id 3 is not supported") == true)
        let empty = await h.call("add-map-server", ["address": "192.0.2.1", "key": ""])
        #expect(message(empty)?.contains("the key of map-server 192.0.2.1 is empty") == true)
        let long = await h.call("add-map-server", ["address": "192.0.2.1", "key": .string(String(repeating: "k", count: 257))])
        #expect(message(long)?.contains("longer than 256 bytes") == true)
        #expect(message(await h.call("add-eid", eid(1 << 24, "10.0.0.0/8")))?.contains("does not fit 24 bits") == true)
        #expect(message(await h.call("add-eid", eid(1, "10.0.0.0/33")))?.contains("not a number from 0 to 32") == true)
        #expect(message(await h.call("add-eid", eid(1, "fd00::/129")))?.contains("not a number from 0 to 128") == true)
        #expect(message(await h.call("add-eid", eid(1, "10.0.0.0")))?.contains("is not ADDRESS/LENGTH") == true)
        #expect(message(await h.call("add-eid", eid(1, "10.0.0.0/+8")))?.contains("not a number") == true)
        let badPriority = await h.call("add-eid", eid(1, "10.0.0.0/8", [["address": "192.0.2.9", "priority": 256]]))
        #expect(message(badPriority)?.contains("priority 256 is not from 0 to 255") == true)
        let badWeight = await h.call("add-eid", eid(1, "10.0.0.0/8", [["address": "192.0.2.9", "weight": -1]]))
        #expect(message(badWeight)?.contains("weight -1 is not from 0 to 255") == true)
        let twice = await h.call("add-eid", eid(1, "10.0.0.0/8", [["address": "192.0.2.9"], ["address": "192.0.2.9"]]))
        #expect(message(twice)?.contains("RLOC 192.0.2.9 is given twice") == true)
        #expect(message(await h.call("add-map-cache", eid(1, "10.0.0.0/8", [])))?.contains("needs at least one RLOC") == true)
        #expect(message(await h.call("add-map-cache", eid(1, "10.0.0.0/8")))?.contains("needs at least one RLOC") == true)
        #expect(message(await h.call("add-map-resolver", ["address": "ff02::1"]))?.contains("not a unicast address") == true)
        // Nothing of it was kept, and `show` has no LISP section.
        #expect(await h.service.configuration().lisp == nil)
        #expect(try await h.ok("show").decode(ShowReport.self).lisp == nil)
        #expect(try await h.ok("show-lisp") == JSONValue(encoding: ShowLISPReport()))
    }

    @Test func duplicatesAndMissingOnesAreErrorsAsForBridges() async throws {
        let h = Harness()
        _ = try await addServer(h).get()
        let again = await addServer(h, "192.0.2.1")
        #expect(message(again) == "map-server 192.0.2.1 is already configured (del-map-server first to change its key)")
        if case .failure(let error) = again { #expect(error.code == RPCError.alreadyExists("").code) }
        // The same address written otherwise is the same server.
        #expect(message(await addServer(h, "::ffff:192.0.2.1")) != nil)
        try await h.ok("add-map-resolver", ["address": "2001:db8::1"])
        #expect(message(await h.call("add-map-resolver", ["address": "2001:DB8:0::1"]))?.contains("already configured") == true)
        try await h.ok("add-eid", eid(7, "10.1.2.3/16"))  // canonical: 10.1.0.0/16
        #expect(message(await h.call("add-eid", eid(7, "10.1.0.0/16")))?.contains("is already a local EID") == true)
        try await h.ok("add-eid", eid(8, "10.1.0.0/16"))  // another instance
        try await h.ok("add-map-cache", eid(7, "10.2.0.0/16", [["address": "192.0.2.2"]]))
        #expect(message(await h.call("add-map-cache", eid(7, "10.2.0.0/16", [["address": "192.0.2.3"]])))?.contains("already in the static map-cache") == true)
        #expect(message(await h.call("del-map-server", ["address": "192.0.2.9"])) == "invalid params: map-server 192.0.2.9 is not configured")
        #expect(message(await h.call("del-eid", eid(9, "10.1.0.0/16")))?.contains("is not a local EID") == true)
        #expect(message(await h.call("del-map-cache", eid(7, "10.3.0.0/16")))?.contains("is not in the static map-cache") == true)

        let report = try await h.ok("show-lisp").decode(ShowLISPReport.self)
        #expect(report.mapServers == [MapServerReport(address: "192.0.2.1", keyID: 0, algorithmID: 2)])
        #expect(report.mapResolvers == ["2001:db8::1"])
        #expect(report.localEIDs.map(\.prefix) == ["10.1.0.0/16", "10.1.0.0/16"])
        #expect(report.localEIDs.map(\.instanceID) == [7, 8])
        #expect(report.localEIDs.allSatisfy { $0.defaultRLOCs })
        #expect(report.staticMapCache == [LocalEIDReport(instanceID: 7, prefix: "10.2.0.0/16", rlocs: [RLOCReport(address: "192.0.2.2", priority: 1, weight: 100)])])

        try await h.ok("del-map-server", ["address": "192.0.2.1"])
        try await h.ok("del-map-resolver", ["address": "2001:db8::1"])
        try await h.ok("del-eid", eid(7, "10.1.0.0/16"))
        try await h.ok("del-eid", eid(8, "10.1.0.0/16"))
        try await h.ok("del-map-cache", eid(7, "10.2.0.0/16"))
        #expect(await h.service.configuration().lisp == nil)
    }

    @Test func countsAreBounded() async throws {
        let h = Harness()
        for i in 1...16 { _ = try await addServer(h, "192.0.2.\(i)").get() }
        let seventeenth = await addServer(h, "192.0.2.17")
        #expect(message(seventeenth) == "at most 16 map-servers may be configured")
        for i in 1...16 { try await h.ok("add-map-resolver", ["address": .string("198.51.100.\(i)")]) }
        #expect(message(await h.call("add-map-resolver", ["address": "198.51.100.17"])) == "at most 16 map-resolvers may be configured")
        let nine = (1...9).map { ["address": JSONValue.string("203.0.113.\($0)")] }
        #expect(message(await h.call("add-eid", eid(1, "10.0.0.0/8", nine)))?.contains("has 9 RLOCs; at most 8") == true)
        // A saved section beyond the bounds is refused at restore.
        var section = LISPSavedConfig()
        section.localEIDs = (0...4096).map { EIDParams(instanceID: 1, prefix: "10.\($0 >> 8).\($0 & 0xff).0/24") }
        let restore = await #expect(throws: RestoreError.self) {
            try await Harness().service.restore(SwitchConfig(systemID: "id", lisp: section))
        }
        #expect(restore?.message.contains("more than 4096 local EID prefixes") == true)
    }

    @Test func keysAreSavedButNeverSentBack() async throws {
        let directory = try makeTemporaryDirectory("vswift-lisp-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/vswiftd.db.json")
        let h = Harness(store: store)
        _ = try await addServer(h, "192.0.2.1", keyID: 1).get()
        _ = try await addServer(h, "2001:db8::5").get()
        try await h.ok("add-map-resolver", ["address": "192.0.2.1"])
        try await h.ok("add-eid", eid(1000, "10.1.0.0/16", [["address": "192.0.2.10", "priority": 2, "weight": 50]]))
        try await h.ok("add-eid", eid(1000, "fd00:1::/48"))
        try await h.ok("add-map-cache", eid(1000, "10.2.0.0/16", [["address": "192.0.2.20"], ["address": "192.0.2.21", "priority": 2]]))

        // The file: 0600, holding the keys and everything else.
        var status = stat()
        #expect(stat(store.path, &status) == 0 && status.st_mode & 0o777 == 0o600)
        let text = try #require(fileText(store.path))
        #expect(text.contains(Self.key))
        let saved = try #require(try store.load())
        #expect(saved.lisp == LISPSavedConfig(
            mapServers: [
                AddMapServerParams(address: "192.0.2.1", key: Self.key, keyID: 0, algorithm: "hmac-sha-1-96"),
                AddMapServerParams(address: "2001:db8::5", key: Self.key, keyID: 0, algorithm: "hmac-sha-256-128"),
            ],
            mapResolvers: ["192.0.2.1"],
            localEIDs: [
                EIDParams(instanceID: 1000, prefix: "10.1.0.0/16", rlocs: [RLOCParams(address: "192.0.2.10", priority: 2, weight: 50)]),
                EIDParams(instanceID: 1000, prefix: "fd00:1::/48"),
            ],
            mapCache: [
                EIDParams(instanceID: 1000, prefix: "10.2.0.0/16", rlocs: [
                    RLOCParams(address: "192.0.2.20", priority: 1, weight: 100), RLOCParams(address: "192.0.2.21", priority: 2, weight: 100),
                ]),
            ]))

        // Nothing a client can ask for carries the key.
        for method in ["show-lisp", "dump-map-cache", "show"] {
            let reply = try await h.ok(method)
            #expect(!String(decoding: reply.jsonText(), as: UTF8.self).contains(Self.key), "\(method)")
        }
        let report = try await h.ok("show-lisp").decode(ShowLISPReport.self)
        #expect(!formatShowLISP(report).contains(Self.key))
        #expect(report.mapServers.map(\.keyID) == [0, 0])
        #expect(report.mapServers.map(\.algorithmID) == [1, 2])
        // `show` carries the same configuration (issue 16: "shown by `show`"), key ids, never keys.
        let shown = try await h.ok("show").decode(ShowReport.self)
        let section = try #require(shown.lisp)
        #expect(section.mapServers == report.mapServers && section.mapResolvers == report.mapResolvers && section.localEIDs == report.localEIDs)
        #expect(section.staticMapCache.isEmpty && section.staticMapCacheCount == 1 && section.sent.isEmpty)
        let shownText = formatShow(shown)
        #expect(!shownText.contains(Self.key))
        #expect(shownText.contains("\n    LISP control: "))
        #expect(shownText.contains("        Map-Server 192.0.2.1\n            key id: 0, algorithm: hmac-sha-1-96 (1)\n"))
        #expect(shownText.contains("        EID [1000] 10.1.0.0/16\n            rloc 192.0.2.10 priority 2 weight 50\n"))
        #expect(shownText.contains("        Map-Cache: 1 static entry (show-lisp lists them)\n"))

        // A new daemon on the same file brings it all back.
        let restored = Harness(store: store)
        try await restored.service.restore(saved)
        #expect(await restored.service.configuration() == h.service.configuration())
        #expect(try await restored.ok("show-lisp") == h.ok("show-lisp"))
        // And goes on from there.
        #expect(message(await addServer(restored, "2001:db8::5")) != nil)
        try await restored.ok("del-map-server", ["address": "2001:db8::5"])
        #expect(try store.load()?.lisp?.mapServers.count == 1)
    }

    @Test func filesWithoutTheSectionLoadAsNothingConfigured() async throws {
        let old = """
            {"bridges": [], "generation": 3, "systemID": "id", "underlays": [], "version": 1}
            """
        let config = try ConfigStore.decode(Data(old.utf8))
        #expect(config.lisp == nil)
        let h = Harness()
        try await h.service.restore(config)
        #expect(try await h.ok("show-lisp") == JSONValue(encoding: ShowLISPReport()))
        // An empty configuration writes no section (files stay as they were).
        let configuration = await h.service.configuration()
        #expect(try !String(decoding: ConfigStore.encode(configuration), as: UTF8.self).contains("lisp"))
        // A section with lists missing reads them as empty.
        let partial = try ConfigStore.decode(Data("""
            {"bridges": [], "systemID": "id", "version": 1, "lisp": {"mapResolvers": ["192.0.2.1"]}}
            """.utf8))
        #expect(partial.lisp == LISPSavedConfig(mapResolvers: ["192.0.2.1"]))
        // A damaged section stops the restore, naming the problem.
        let damaged = SwitchConfig(systemID: "id", lisp: LISPSavedConfig(mapServers: [AddMapServerParams(address: "192.0.2.1", key: "", keyID: 2)]))
        let error = await #expect(throws: RestoreError.self) { try await Harness().service.restore(damaged) }
        #expect(error?.message == "cannot restore the LISP control configuration: invalid params: the key of map-server 192.0.2.1 is empty")
    }

    @Test func aChangeThatCannotBeSavedIsUndone() async throws {
        let directory = try makeTemporaryDirectory("vswift-lisp-undo")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/vswiftd.db.json")
        let h = Harness(store: store)
        try await h.ok("add-map-resolver", ["address": "192.0.2.1"])
        // A directory where the temporary file goes makes the save fail.
        try FileManager.default.createDirectory(atPath: store.path + ".tmp", withIntermediateDirectories: false)
        let refused = await h.call("add-map-resolver", ["address": "192.0.2.2"])
        #expect(message(refused)?.contains("add-map-resolver was refused and nothing changed") == true)
        #expect(await h.service.configuration().lisp?.mapResolvers == ["192.0.2.1"])
        try FileManager.default.removeItem(atPath: store.path + ".tmp")
        try await h.ok("add-map-resolver", ["address": "192.0.2.2"])
        #expect(try store.load()?.lisp?.mapResolvers == ["192.0.2.1", "192.0.2.2"])
    }
}
