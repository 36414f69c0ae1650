import Foundation
import Glibc
import Logging
import Testing
import VSwiftTesting
import VSwiftDatapath
import VSwiftProtocol
@testable import VSwiftControl

private let nobody: uid_t = 65534

/// Defects 2 and 3 of issue 13: names planted in vswiftd's directories must not redirect its
/// writes or stand in for its socket. (Run as root, like vswiftd.)
@Suite(.serialized) struct TrustBoundaryTests {
    /// The attack: another user plants `db.json.tmp -> /some/root/file`; saving must not touch it.
    @Test func aPlantedTemporarySymlinkIsNotFollowed() async throws {
        let directory = try makeTemporaryDirectory("vswift-trust", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let victim = directory + "/victim"
        try "root's file\n".write(toFile: victim, atomically: false, encoding: .utf8)
        let store = ConfigStore(path: directory + "/db.json")
        #expect(symlink(victim, store.path + ".tmp") == 0)
        try store.save(SwitchConfig(systemID: "id"))
        #expect(fileText(victim) == "root's file\n")
        #expect(try store.load() == SwitchConfig(systemID: "id", generation: 0))
        var status = stat()
        #expect(lstat(store.path, &status) == 0 && status.st_mode & S_IFMT == S_IFREG)
        #expect(lstat(store.path + ".tmp", &status) != 0)
    }

    /// The same attack on the journal, which is appended to: refused, and the target untouched.
    @Test func aPlantedJournalSymlinkOrHardLinkIsRefused() async throws {
        let directory = try makeTemporaryDirectory("vswift-trust", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let victim = directory + "/victim"
        try "root's file\n".write(toFile: victim, atomically: false, encoding: .utf8)
        let store = ConfigStore(path: directory + "/db.json")
        let record = ConfigJournal.Record(method: "add-flow", params: .object(["bridge": "br0", "flow": "actions=drop"]))
        #expect(symlink(victim, store.journal.path) == 0)
        #expect(throws: ConfigStoreError.self) { try store.journal.append(record, generation: 1) }
        #expect(fileText(victim) == "root's file\n")
        unlink(store.journal.path)
        #expect(link(victim, store.journal.path) == 0)
        let error = #expect(throws: ConfigStoreError.self) { try store.journal.append(record, generation: 1) }
        #expect(error?.problem.contains("hard links") == true)
        #expect(fileText(victim) == "root's file\n")
    }

    @Test func directoriesOthersCanChangeAreRefused() async throws {
        let directory = try makeTemporaryDirectory("vswift-trust", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/db.json")
        try store.checkDirectory()
        chmod(directory, 0o777)
        let writable = #expect(throws: SafePathError.self) { try store.checkDirectory() }
        #expect(writable?.problem.contains("writable by group or others") == true)
        #expect(throws: SafePathError.self) { try SafeDirectory.checkSocket(directory + "/ctl.sock") }
        chmod(directory, 0o775)
        #expect(throws: SafePathError.self) { try store.checkDirectory() }
        // Sticky, like /tmp: fine while the names vswiftd uses are its own.
        chmod(directory, 0o1777)
        try store.checkDirectory()
        try SafeDirectory.checkSocket(directory + "/ctl.sock")
        #expect(symlink("/etc/passwd", store.path + ".tmp") == 0)
        let planted = #expect(throws: SafePathError.self) { try store.checkDirectory() }
        #expect(planted?.path == store.path + ".tmp")
        unlink(store.path + ".tmp")
        try "{}".write(toFile: store.journal.path, atomically: false, encoding: .utf8)
        chown(store.journal.path, nobody, nobody)
        let foreign = #expect(throws: SafePathError.self) { try store.checkDirectory() }
        #expect(foreign?.problem.contains("uid \(nobody)") == true)
        unlink(store.journal.path)
        // Owned by another user: refused even when not writable by others.
        chmod(directory, 0o755)
        chown(directory, nobody, nobody)
        #expect(throws: SafePathError.self) { try store.checkDirectory() }
    }

    @Test func theServerRefusesAnUnsafeSocketDirectory() async throws {
        let directory = try makeTemporaryDirectory("vswift-trust", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        chmod(directory, 0o777)
        let server = ControlServer(socketPath: directory + "/ctl.sock", logger: Logger(label: "test")) { _ in .success(.null) }
        #expect(throws: SafePathError.self) { try server.start() }
        #expect(!FileManager.default.fileExists(atPath: directory + "/ctl.sock"))
    }

    /// The hijack: another user renames vswiftd's socket and listens in its place. vswiftctl must
    /// refuse to talk to it, and vswiftd must not delete it at exit.
    @Test func anImpostorSocketIsRefusedByTheClientAndLeftByTheServer() async throws {
        let directory = try makeTemporaryDirectory("vswift-trust", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A sticky directory the other user can write to (as /tmp or a careless /run/vswift).
        chmod(directory, 0o1777)
        let path = directory + "/ctl.sock"
        let server = ControlServer(socketPath: path, logger: Logger(label: "test")) { _ in .success(.string("daemon")) }
        try server.start()
        defer { server.stop() }
        #expect(try ControlClient(socketPath: path, timeout: .seconds(5)).call("show", params: nil).get() == .string("daemon"))

        #expect(rename(path, directory + "/moved.sock") == 0)
        let impostor = try unixListener(path, asUID: nobody)
        defer { close(impostor) }
        let error = #expect(throws: ControlClientError.self) {
            try ControlClient(socketPath: path, timeout: .seconds(1)).call("show", params: nil)
        }
        #expect(error == .untrustedPeer(path: path, uid: nobody))
        #expect(error?.description.contains("uid \(nobody)") == true)
        // Nothing was sent: the impostor has a connection waiting with no bytes in it.
        let accepted = accept(impostor, nil, nil)
        #expect(accepted >= 0)
        var byte: UInt8 = 0
        #expect(recv(accepted, &byte, 1, Int32(MSG_DONTWAIT)) == 0)
        close(accepted)
        server.stop()
        var status = stat()
        #expect(lstat(path, &status) == 0 && status.st_mode & S_IFMT == S_IFSOCK)
    }

    /// A stale socket of another user is not removed to make room (it is not vswiftd's).
    @Test func anotherUsersSocketIsNotReplaced() async throws {
        let directory = try makeTemporaryDirectory("vswift-trust", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        chmod(directory, 0o1777)
        let path = directory + "/ctl.sock"
        close(try unixListener(path))
        chown(path, nobody, nobody)
        let server = ControlServer(socketPath: path, logger: Logger(label: "test")) { _ in .success(.null) }
        #expect(throws: SafePathError.self) { try server.start() }
        var status = stat()
        #expect(lstat(path, &status) == 0 && status.st_uid == nobody)
    }
}

/// Defect 4 of issue 13: a change that cannot be saved is refused, and the datapath, the service
/// and the file stay as they were; a restart then brings back exactly what ran.
@Suite struct DurableChangeTests {
    /// Makes every save fail the way a full file system does for the temporary file.
    private static func blockSaves(_ store: ConfigStore) throws {
        try FileManager.default.createDirectory(atPath: store.path + ".tmp", withIntermediateDirectories: false)
    }

    private static func unblockSaves(_ store: ConfigStore) throws {
        try FileManager.default.removeItem(atPath: store.path + ".tmp")
    }

    private static func restart(_ store: ConfigStore) async throws -> Harness {
        let h = Harness(store: store)
        try await h.service.restore(try #require(try store.load()))
        try await h.service.replayJournal()
        return h
    }

    @Test func everyKindOfRefusedChangeLeavesTheOldState() async throws {
        let directory = try makeTemporaryDirectory("vswift-trust", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/db.json")
        let h = Harness(store: store)
        try await h.ok("add-br", ["bridge": "br0"])
        try await h.ok("add-port", ["bridge": "br0", "port": "eth1"])
        try await h.ok("add-underlay", ["device": "eth2"])
        try await h.addFlow("br0", "priority=7,in_port=eth1,actions=output:LOCAL")
        let before = await h.service.configuration()
        let show = try await h.show()
        let datapathBridges = h.datapath.bridges
        let datapathPorts = h.datapath.ports
        let table = h.datapath.flowTables["br0"]?.map(\.priority)

        try Self.blockSaves(store)
        let refused: [(String, [String: JSONValue])] = [
            ("add-br", ["bridge": "br1"]),
            ("del-br", ["bridge": "br0"]),
            ("add-port", ["bridge": "br0", "port": "vnet0"]),
            ("del-port", ["port": "eth1"]),
            ("add-underlay", ["device": "vnet0"]),
            ("del-underlay", ["device": "eth2"]),
            ("add-flow", ["bridge": "br0", "flow": "priority=9,actions=drop"]),
            ("add-flows", ["bridge": "br0", "flows": .array((1...500).map { .string("priority=3,tcp,tp_dst=\($0),actions=drop") })]),
            ("replace-flows", ["bridge": "br0", "flows": ["actions=drop"]]),
            ("del-flows", ["bridge": "br0"]),
            ("mod-flows", ["bridge": "br0", "flow": "actions=drop"]),
        ]
        for (method, params) in refused {
            let error = await h.call(method, params).error
            #expect(error?.message.contains("refused and nothing changed") == true, "\(method)")
            #expect(await h.service.configuration() == before, "\(method)")
            #expect(try await h.show() == show, "\(method)")
            #expect(h.datapath.bridges == datapathBridges, "\(method)")
            #expect(h.datapath.ports == datapathPorts, "\(method)")
            #expect(h.datapath.flowTables["br0"]?.map(\.priority) == table, "\(method)")
            #expect(h.datapath.portNumbers["br0"] == ["br0": ofportLocal, "eth1": 1], "\(method)")
        }
        try Self.unblockSaves(store)
        #expect(try store.load()?.bridges == before.bridges)
        let restarted = try await Self.restart(store)
        #expect(await restarted.service.configuration().bridges == before.bridges)
        #expect(await restarted.service.configuration().underlays == before.underlays)
        // And the service goes on normally.
        try await h.ok("add-port", ["bridge": "br0", "port": "vnet0"])
        #expect(try store.load()?.bridges[0].ports.map(\.name) == ["eth1", "vnet0"])
    }

    /// A journaled flow change whose request then fails leaves no record behind (a replay would
    /// fail and stop the next start), and one that cannot be journaled is refused.
    @Test func journaledChangesAreDurableOrRefused() async throws {
        let directory = try makeTemporaryDirectory("vswift-trust", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/db.json")
        let h = Harness(store: store, journalFromBytes: 0)
        try await h.ok("add-br", ["bridge": "br0"])
        try await h.addFlow("br0", "priority=5,actions=drop")
        let journalSize = (try? FileManager.default.attributesOfItem(atPath: store.journal.path)[.size] as? Int) ?? nil
        #expect(journalSize != nil)
        #expect(await h.call("add-flow", ["bridge": "br0", "flow": "priority=6,actions=output:nosuchport"]).error != nil)
        #expect(((try? FileManager.default.attributesOfItem(atPath: store.journal.path)[.size]) as? Int) == journalSize)
        let restarted = try await Self.restart(store)
        #expect(try await restarted.flows("br0") == ["priority=5 actions=drop", "priority=0 actions=NORMAL"])
    }

    /// A crash between journaling a change that then fails and cutting it leaves it last in the
    /// journal: the next start ignores it (it was never acknowledged). One in the middle is damage.
    @Test func aFailedChangeLeftLastInTheJournalDoesNotStopTheStart() async throws {
        let directory = try makeTemporaryDirectory("vswift-trust", mode: 0o755)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/db.json")
        let h = Harness(store: store, journalFromBytes: 0)
        try await h.ok("add-br", ["bridge": "br0"])
        try await h.addFlow("br0", "priority=5,actions=drop")
        let generation = await h.service.configuration().generation
        let bad = ConfigJournal.Record(method: "add-flow", params: .object(["bridge": "br0", "flow": "actions=output:nosuchport"]))
        try store.journal.append(bad, generation: generation)
        #expect(try await Self.restart(store).flows("br0") == ["priority=5 actions=drop", "priority=0 actions=NORMAL"])
        try store.journal.append(
            ConfigJournal.Record(method: "add-flow", params: .object(["bridge": "br0", "flow": "priority=6,actions=drop"])),
            generation: generation)
        await #expect(throws: RestoreError.self) { try await Self.restart(store) }
    }
}
