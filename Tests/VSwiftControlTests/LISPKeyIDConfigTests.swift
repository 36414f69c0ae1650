import Foundation
import Testing
import VSwiftTesting
import VSwiftLISPControl
import VSwiftPacket
import VSwiftProtocol
@testable import VSwiftControl

/// A map-server's Key ID (RFC 9301 §5.6, 0–255: which pre-shared secret) and algorithm by name
/// (§12.5) through add-map-server: checked, saved, shown (never the key), handed to the control
/// plane; and the RFC 6830 form (`key_id` 1 or 2 alone naming the algorithm) still works.
@Suite struct LISPKeyIDConfigTests {
    func message(_ result: Result<JSONValue, RPCError>) -> String? {
        if case .failure(let error) = result { return error.message }
        return nil
    }

    @Test func rfc9301_5_6_keyIDAndAlgorithmNamesAreCheckedSavedAndShown() async throws {
        let directory = try makeTemporaryDirectory("vswift-lisp-keyid")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/vswiftd.db.json")
        let h = Harness(store: store)
        try await h.ok("add-map-server", ["address": "192.0.2.1", "key": "k1", "algorithm": "sha1", "key_id": 7])
        try await h.ok("add-map-server", ["address": "192.0.2.2", "key": "k2", "algorithm": "HMAC-SHA-256-128-None"])
        try await h.ok("add-map-server", ["address": "192.0.2.3", "key": "k3", "key_id": 1]) // RFC 6830's form
        try await h.ok("add-map-server", ["address": "192.0.2.4", "key": "k4", "algorithm": "2", "key_id": 255])

        let servers = await h.service.lispValidated.configuration.mapServers
        #expect(servers.map(\.key.keyID) == [7, 0, 0, 255])
        #expect(servers.map(\.key.algorithm) == [.hmacSHA1_96, .hmacSHA256_128, .hmacSHA1_96, .hmacSHA256_128])
        #expect(servers.map(\.key.field) == [0x0701, 0x0002, 0x0001, 0xff02])

        let saved = try #require(try store.load()?.lisp)
        #expect(saved.mapServers.map(\.algorithm) == ["hmac-sha-1-96", "hmac-sha-256-128", "hmac-sha-1-96", "hmac-sha-256-128"])
        #expect(saved.mapServers.map(\.keyID) == [7, 0, 0, 255])

        let report = try await h.ok("show-lisp").decode(ShowLISPReport.self)
        #expect(report.mapServers.map(\.keyID) == [7, 0, 0, 255])
        #expect(report.mapServers.map(\.algorithmID) == [1, 2, 1, 2])
        let text = formatShowLISP(report)
        #expect(text.contains("    Map-Server 192.0.2.1\n        key id: 7, algorithm: hmac-sha-1-96 (1)\n"))
        #expect(text.contains("    Map-Server 192.0.2.4\n        key id: 255, algorithm: hmac-sha-256-128 (2)\n"))
        for secret in ["k1", "k2", "k3", "k4"] {
            #expect(!String(decoding: try await h.ok("show-lisp").jsonText(), as: UTF8.self).contains("\"\(secret)\""))
        }
        // A daemon restarted on the file has the same keys, Key IDs included.
        let restored = Harness(store: store)
        try await restored.service.restore(try #require(try store.load()))
        #expect(await restored.service.lispValidated == h.service.lispValidated)
    }

    @Test func rfc9301_5_6_outOfRangeKeyIDsAndUnknownAlgorithmsAreRefused() async throws {
        let h = Harness()
        let wide = await h.call("add-map-server", ["address": "192.0.2.1", "key": "k", "algorithm": "sha256", "key_id": 256])
        #expect(message(wide)?.contains("key id 256 is not from 0 to 255") == true)
        let negative = await h.call("add-map-server", ["address": "192.0.2.1", "key": "k", "algorithm": "sha256", "key_id": -1])
        #expect(message(negative)?.contains("key id -1 is not from 0 to 255") == true)
        for name in ["md5", "none", "0", "3", "HMAC-SHA256-128+HKDF-SHA256", ""] {
            let refused = await h.call("add-map-server", ["address": "192.0.2.1", "key": "k", "algorithm": .string(name)])
            #expect(message(refused)?.contains("algorithm \"\(name)\" is not supported") == true, "\(name)")
        }
        // Without an algorithm, key_id is RFC 6830's: only 1 and 2.
        let legacy = await h.call("add-map-server", ["address": "192.0.2.1", "key": "k", "key_id": 7])
        #expect(message(legacy)?.contains("key id 7 is not supported") == true)
        #expect(await h.service.configuration().lisp == nil)
    }

    /// A file written before Key IDs (RFC 6830's `key_id` 2 alone) restores as before.
    @Test func filesWithTheOldKeyIDRestore() async throws {
        let old = try ConfigStore.decode(Data("""
            {"bridges": [], "systemID": "id", "version": 1,
             "lisp": {"mapServers": [{"address": "192.0.2.1", "key": "k", "key_id": 1}]}}
            """.utf8))
        let h = Harness()
        try await h.service.restore(old)
        let key = try #require(await h.service.lispValidated.configuration.mapServers.first?.key)
        #expect(key == AuthenticationKey(algorithm: .hmacSHA1_96, keyID: 0, password: "k"))
    }
}
