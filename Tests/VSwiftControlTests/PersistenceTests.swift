import Foundation
import Glibc
import Logging
import Testing
import VSwiftTesting
import VSwiftDatapath
import VSwiftPacket
import VSwiftProtocol
@testable import VSwiftControl

@Suite struct PersistenceTests {
    /// The streamed encoding is exactly the pretty JSON of the configuration as a value.
    @Test func streamedEncodingMatchesValueEncoding() async throws {
        let configs = [
            SwitchConfig(systemID: "id"),
            SwitchConfig(systemID: "x\"y", bridges: [
                BridgeConfig(name: "br0", nextOfport: 1, ports: [], flows: []),
                BridgeConfig(name: "br1", nextOfport: 4, ports: [
                    PortConfig(name: "eth1", ofport: 1),
                    PortConfig(name: "t0", ofport: 3, type: "lisp", options: ["remote_ip": "10.0.0.1", "key": "5\u{1}\\"]),
                ], flows: ["priority=1,actions=drop", "a\tb\n\"é\""]),
            ]),
            // Every list non-empty, underlays included.
            SwitchConfig(systemID: "id", bridges: [
                BridgeConfig(name: "br0", nextOfport: 3, ports: [
                    PortConfig(name: "eth1", ofport: 1, options: ["a": "1"]),
                    PortConfig(name: "eth2", ofport: 2),
                ], flows: ["priority=0 actions=NORMAL"]),
            ], underlays: ["eth3", "eth\"4"], generation: 7),
        ]
        for config in configs {
            let value = try JSONValue(encoding: config)
            #expect(try ConfigStore.encode(config) == value.jsonText(pretty: true) + [UInt8(ascii: "\n")])
            var pieces: [UInt8] = []
            ConfigStore.encode(value, chunkSize: 7) { chunk in
                pieces += chunk
                return true
            }
            #expect(try pieces == ConfigStore.encode(config))
            #expect(try ConfigStore.decode(Data(pieces)) == config)
        }
    }

    /// The file's layout, pinned: files written before must read the same, and diffs stay small.
    @Test func savedFileText() throws {
        let config = SwitchConfig(systemID: "id", bridges: [
            BridgeConfig(name: "br0", nextOfport: 2, ports: [PortConfig(name: "t0", ofport: 1, type: "lisp", options: ["key": "5"])],
                         flows: ["priority=0 actions=NORMAL", "priority=1 actions=drop"]),
        ], underlays: ["eth3", "eth4"], generation: 7)
        let text = """
            {
              "bridges": [
                {
                  "flows": [
                    "priority=0 actions=NORMAL",
                    "priority=1 actions=drop"
                  ],
                  "name": "br0",
                  "nextOfport": 2,
                  "ports": [
                    {
                      "name": "t0",
                      "ofport": 1,
                      "options": {
                        "key": "5"
                      },
                      "type": "lisp"
                    }
                  ]
                }
              ],
              "generation": 7,
              "systemID": "id",
              "underlays": [
                "eth3",
                "eth4"
              ],
              "version": 1
            }

            """
        #expect(try String(decoding: ConfigStore.encode(config), as: UTF8.self) == text)
        #expect(try ConfigStore.decode(Data(text.utf8)) == config)
        // As vswiftd wrote underlays before they were one per line.
        let old = text.replacingOccurrences(of: "[\n    \"eth3\",\n    \"eth4\"\n  ]", with: #"["eth3", "eth4"]"#)
        #expect(old != text)
        #expect(try ConfigStore.decode(Data(old.utf8)) == config)
    }

    @Test func everyChangeIsSavedAndRestored() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/state/vswiftd.db.json")  // the directory is created
        let h = Harness(store: store)
        try await h.ok("add-br", ["bridge": "br2"])
        #expect(try store.load()?.bridges.map(\.name) == ["br2"])
        try await h.ok("add-br", ["bridge": "br1"])
        try await h.ok("add-port", ["bridge": "br2", "port": "eth2"])
        try await h.ok("add-port", ["bridge": "br2", "port": "vnet0"])
        try await h.ok("add-port", ["bridge": "br2", "port": "eth1"])
        try await h.ok("del-port", ["port": "eth2"])  // number 1 is not given again
        try await h.ok("add-port", ["bridge": "br1", "port": "eth2"])
        try await h.addFlow("br2", "priority=2,in_port=vnet0,dl_type=0x0806,action=NORMAL")
        try await h.addFlow("br2", "cookie=0x1f,idle_timeout=60,hard_timeout=600,priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:2")
        try await h.addFlow("br2", "priority=1,in_port=2,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:3")
        // Equal priorities: the order of installation is kept across the restart.
        try await h.addFlow("br2", "priority=1,in_port=3,actions=drop")
        try await h.ok("del-flows", ["bridge": "br1"])  // br1 keeps no flows at all

        let saved = try #require(try store.load())
        #expect(await saved == h.service.configuration())
        #expect(saved.systemID == "390982aa-7bf6-4dfd-84eb-76fe7654e73d")
        #expect(saved.bridges.map(\.name) == ["br2", "br1"])
        #expect(saved.bridges[0].ports == [PortConfig(name: "vnet0", ofport: 2), PortConfig(name: "eth1", ofport: 3)])
        #expect(saved.bridges[0].nextOfport == 4)
        #expect(saved.bridges[0].flows == [
            "cookie=0x1f, idle_timeout=60, hard_timeout=600, priority=3,dl_dst=02:00:00:00:00:00 actions=mod_dl_dst:52:54:00:b8:27:75,output:2",
            "priority=2,arp,in_port=2 actions=NORMAL",
            "priority=1,ip,in_port=2,vlan_tci=0x0000,nw_src=10.1.1.0/24 actions=output:3",
            "priority=1,in_port=3 actions=drop",
            "priority=0 actions=NORMAL",
        ])
        #expect(saved.bridges[1].flows == [])
        #expect(!FileManager.default.fileExists(atPath: store.path + ".tmp"))

        // A new daemon on the same file.
        let restored = Harness(devices: ["vnet0", "eth1", "eth2", "eth3"], store: store)
        try await restored.service.restore(saved)
        #expect(try await restored.show() == h.show())
        #expect(try await restored.flows("br2") == h.flows("br2"))
        #expect(try await restored.flows("br1") == [])
        #expect(restored.datapath.flowTables["br1"].map(\.isEmpty) == true)
        #expect(restored.datapath.portNumbers["br2"] == ["vnet0": 2, "eth1": 3, "br2": ofportLocal])
        let cookieFlow = try #require(await restored.dump("br2").flows.first)
        #expect(cookieFlow.cookie == 0x1f && cookieFlow.idleTimeout == 60 && cookieFlow.hardTimeout == 600)
        let ties = (restored.datapath.flowTables["br2"] ?? []).filter { $0.priority == 1 }.sorted { $0.sequence < $1.sequence }
        #expect(ties.map { $0.match.value(.inPort) } == [2, 3])
        // Numbering goes on where it was.
        try await restored.ok("add-port", ["bridge": "br2", "port": "eth3"])
        #expect(try await restored.show().bridges[0].ports.map(\.ofport) == [2, 3, 4, ofportLocal])
    }

    @Test func aMissingDeviceStaysConfiguredWithAnError() async throws {
        let config = SwitchConfig(systemID: "id", bridges: [
            BridgeConfig(
                name: "br2", nextOfport: 3,
                ports: [PortConfig(name: "vnet0", ofport: 1), PortConfig(name: "lisp0", ofport: 2, type: "lisp", options: ["remote_ip": "192.168.1.252"])],
                flows: ["priority=1,in_port=1,actions=output:2"]),
        ])
        let h = Harness(devices: ["lisp0"])
        try await h.service.restore(config)
        let ports = try await h.show().bridges[0].ports
        #expect(ports.map(\.name) == ["vnet0", "lisp0", "br2"])
        #expect(ports[0].error == #"could not attach vnet0: no network device named "vnet0""#)
        // The LISP port needs no device: it comes back with its options.
        #expect(ports[1].error == nil && ports[1].type == "lisp" && ports[1].options == ["remote_ip": "192.168.1.252"])
        #expect(h.datapath.tunnelOptions["lisp0"] == LISPPortOptions(remote: .address(IPAddress("192.168.1.252")!)))
        #expect(formatShow(try await h.show()).contains(#"                error: "could not attach vnet0: no network device named \"vnet0\"""#))
        // vnet0 is not in the datapath, so not in its port numbers; the flows are there all the same.
        #expect(h.datapath.portNumbers["br2"] == ["lisp0": 2, "br2": ofportLocal])
        #expect(try await h.flows("br2") == ["priority=1,in_port=1 actions=output:2"])
        // The configuration keeps the port until it is deleted.
        #expect(await h.service.configuration().bridges[0].ports.count == 2)
        try await h.ok("del-port", ["port": "vnet0"])
        #expect(try await h.show().bridges[0].ports.map(\.name) == ["lisp0", "br2"])
    }

    @Test func restoreRefusesWhatItCannotBringBack() async throws {
        let badFlow = SwitchConfig(systemID: "id", bridges: [
            BridgeConfig(name: "br2", nextOfport: 1, ports: [], flows: ["priority=1,nw_src=1.2.3.4,actions=drop"]),
        ])
        await #expect(throws: RestoreError.self) { try await Harness().service.restore(badFlow) }
        let twice = SwitchConfig(systemID: "id", bridges: [
            BridgeConfig(name: "br2", nextOfport: 1, ports: [], flows: []),
            BridgeConfig(name: "br2", nextOfport: 1, ports: [], flows: []),
        ])
        await #expect(throws: RestoreError.self) { try await Harness().service.restore(twice) }
        let badNumber = SwitchConfig(systemID: "id", bridges: [
            BridgeConfig(name: "br2", nextOfport: 2, ports: [PortConfig(name: "vnet0", ofport: 5)], flows: []),
        ])
        await #expect(throws: RestoreError.self) { try await Harness().service.restore(badNumber) }
    }

    @Test func restoredFlowsAreParsedInChunksAndKeepTheirSavedText() async throws {
        // Not as FlowFormatter writes them ("…,actions=" rather than " actions="): kept as saved.
        var flows = (0..<20_000).map { i in "priority=5,ip,nw_dst=10.0.\(i >> 8).\(i & 0xff),actions=drop" }
        let config = SwitchConfig(systemID: "id", bridges: [BridgeConfig(name: "br2", nextOfport: 1, ports: [], flows: flows)])
        let h = Harness()
        try await h.service.restore(config)
        #expect(await h.service.configuration().bridges.first?.flows == flows)
        #expect(try await h.dump("br2").flows.count == 20_000)
        // A change formats only what changed.
        try await h.addFlow("br2", "priority=5,ip,nw_dst=10.0.0.0,actions=output:1")
        let saved = try #require(await h.service.configuration().bridges.first?.flows)
        #expect(saved.count == 20_000 && saved.last == "priority=5,ip,nw_dst=10.0.0.0 actions=output:1")
        #expect(saved.first == flows[1])

        flows[15_000] = "priority=5,nw_dst=10.9.9.9,actions=drop"  // no ip prerequisite
        let bad = SwitchConfig(systemID: "id", bridges: [BridgeConfig(name: "br2", nextOfport: 1, ports: [], flows: flows)])
        let error = await #expect(throws: RestoreError.self) { try await Harness().service.restore(bad) }
        #expect(error?.message.contains("flow 15001 (priority=5,nw_dst=10.9.9.9,actions=drop): ") == true)
    }

    /// A flow file's flows are saved as their lines (nothing to format), except where a line
    /// names a port: the name stands for the port only while it exists, so those are saved with
    /// numbers. A restart brings back exactly the table the requests made.
    @Test func fileFlowsAreSavedAsTheirLines() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/vswiftd.db.json")
        let h = Harness(store: store)
        try await h.ok("add-br", ["bridge": "br0"])
        try await h.ok("add-port", ["bridge": "br0", "port": "vnet0"])
        try await h.ok("add-port", ["bridge": "br0", "port": "eth1"])
        _ = try await h.addFlows("br0", [
            "  priority=5,ip,nw_dst=10.0.0.1,actions=output:2  # to eth1",
            "priority=6,in_port=vnet0,actions=drop",
            "",
            "cookie=0x5,hard_timeout=30,priority=7,tcp,actions=output:1",
            "priority=8,in_port=br0,actions=drop",
            "priority=9,in_port=LOCAL,actions=output:IN_PORT",
        ]).get()
        #expect(try store.load()?.bridges[0].flows == [
            "priority=9,in_port=LOCAL,actions=output:IN_PORT",
            "priority=8,in_port=LOCAL actions=drop",
            "cookie=0x5,hard_timeout=30,priority=7,tcp,actions=output:1",
            "priority=6,in_port=1 actions=drop",
            "priority=5,ip,nw_dst=10.0.0.1,actions=output:2",
            "priority=0 actions=NORMAL",
        ])
        // A changed flow is saved as formatted; replace-flows keeps its lines too.
        try await h.ok("mod-flows", ["bridge": "br0", "flow": "priority=9,in_port=LOCAL,actions=drop", "strict": true])
        _ = try await h.ok("replace-flows", ["bridge": "br0", "flows": .array([
            "priority=9,in_port=LOCAL,actions=drop", "priority=4,udp,tp_dst=53,actions=output:eth1",
            "priority=3,udp,tp_dst=54,actions=output:2",
        ].map(JSONValue.string))])
        #expect(try store.load()?.bridges[0].flows == [
            "priority=9,in_port=LOCAL actions=drop",
            "priority=4,udp,tp_dst=53 actions=output:2",
            "priority=3,udp,tp_dst=54,actions=output:2",
        ])
        // vnet0 goes and comes back as port 3: flows saved by name would now mean port 3.
        _ = try await h.addFlows("br0", ["priority=2,in_port=vnet0,actions=output:eth1", "priority=1,in_port=1,actions=drop"]).get()
        try await h.ok("del-port", ["port": "vnet0"])
        try await h.ok("add-port", ["bridge": "br0", "port": "vnet0"])
        let restored = Harness(store: store)
        try await restored.service.restore(try #require(try store.load()))
        #expect(try await restored.flows("br0") == h.flows("br0"))
        #expect(try await restored.flows("br0").suffix(2) == ["priority=2,in_port=1 actions=output:2", "priority=1,in_port=1 actions=drop"])
        #expect(try await restored.dump("br0").flows.map(\.cookie) == h.dump("br0").flows.map(\.cookie))
        #expect(try await restored.dump("br0").flows.map(\.hardTimeout) == h.dump("br0").flows.map(\.hardTimeout))
    }

    /// The saved texts put in order while a bulk change is published are those of the table as
    /// it is at the save, also after later small changes.
    @Test func savedTextsFollowEveryChange() async throws {
        let h = Harness()
        try await h.ok("add-br", ["bridge": "br0"])
        let lines = (0..<100).map { "priority=5,udp,tp_dst=\($0),actions=drop" }
        _ = try await h.addFlows("br0", lines).get()
        #expect(await h.service.configuration().bridges[0].flows == lines + ["priority=0 actions=NORMAL"])
        try await h.addFlow("br0", "priority=6,tcp,actions=drop")
        try await h.ok("del-flows", ["bridge": "br0", "match": "priority=5,udp,tp_dst=3", "strict": true])
        try await h.ok("mod-flows", ["bridge": "br0", "flow": "priority=5,udp,tp_dst=4,actions=output:1", "strict": true])
        var expected = ["priority=6,tcp actions=drop"] + lines + ["priority=0 actions=NORMAL"]
        expected.remove(at: 4)
        expected[4] = "priority=5,udp,tp_dst=4 actions=output:1"
        #expect(await h.service.configuration().bridges[0].flows == expected)
        _ = try await h.ok("replace-flows", ["bridge": "br0", "flows": .array(lines.prefix(2).map(JSONValue.string))])
        #expect(await h.service.configuration().bridges[0].flows == Array(lines.prefix(2)))
    }

    /// Crash safety of a bulk change saved as its lines: whatever point a crash interrupts the
    /// save at (the new file written in part, or whole but not yet renamed, or renamed), a restart
    /// brings back either the table before the change or the one after it, never a mix.
    @Test func aCrashDuringABulkSaveLeavesTheOldTableOrTheNew() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/vswiftd.db.json")
        let h = Harness(store: store)
        try await h.ok("add-br", ["bridge": "br0"])
        try await h.ok("add-port", ["bridge": "br0", "port": "vnet0"])
        _ = try await h.addFlows("br0", (0..<3000).map { "priority=7,udp,tp_dst=\($0),actions=output:1" }).get()
        let oldFile = try #require(FileManager.default.contents(atPath: store.path))
        let oldFlows = try await h.flows("br0")
        _ = try await h.addFlows("br0", (0..<3000).map { i in
            i % 3 == 0 ? "priority=8,in_port=vnet0,udp,tp_dst=\(i),actions=drop" : "cookie=0x\(i),priority=7,udp,tp_dst=\(i),actions=output:2 # new"
        }).get()
        let newFile = try #require(FileManager.default.contents(atPath: store.path))
        let newFlows = try await h.flows("br0")
        #expect(oldFlows != newFlows)

        func restart() async throws -> [String] {
            let restarted = Harness(store: store)
            try await restarted.service.restore(try #require(try store.load()))
            try await restarted.service.replayJournal()
            return try await restarted.flows("br0")
        }
        // Before the rename: the old file stands, whatever part of the new one was written.
        for cut in [0, 1, newFile.count / 3, newFile.count - 1, newFile.count] {
            try oldFile.write(to: URL(fileURLWithPath: store.path))
            try newFile.prefix(cut).write(to: URL(fileURLWithPath: store.path + ".tmp"))
            #expect(try await restart() == oldFlows, "cut at \(cut)")
        }
        // After the rename: the new file, also with a journal left from the old generation.
        try newFile.write(to: URL(fileURLWithPath: store.path))
        #expect(try await restart() == newFlows)
        try store.journal.append(
            ConfigJournal.Record(method: "del-flows", params: .object(["bridge": "br0"])),
            generation: try #require(try ConfigStore.decode(oldFile)).generation)
        #expect(try await restart() == newFlows)
    }

    @Test func noFileIsAFirstStart() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try ConfigStore(path: directory + "/none.json").load() == nil)
    }

    @Test func aCorruptFileIsAnErrorNamingIt() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/vswiftd.db.json"
        let store = ConfigStore(path: path)
        for (text, problem) in [
            ("{\"version\": 1, \"systemID\": \"x\", \"bridges\": [", "not a vswiftd configuration"),  // cut short
            ("garbage", "not a vswiftd configuration"),
            (#"{"version": 1, "systemID": "x", "bridges": [{"name": "br0"}]}"#, #"missing "bridges[0].nextOfport""#),
            (#"{"version": 9, "systemID": "x", "bridges": []}"#, "format version 9 is not supported"),
            (#"{"version": 1, "systemID": "x", "bridges": [{"name": "br0", "nextOfport": 1, "ports": [], "flows": ["actions=drop", 5]}]}"#,
             #""bridges[0].flows[1]" must be a string"#),
            (#"{"version": 1, "systemID": "x", "bridges": [{"name": "br0", "nextOfport": 1, "ports": [], "flows": "x"}]}"#,
             "bridges[0].flows"),
        ] {
            try text.write(toFile: path, atomically: false, encoding: .utf8)
            let error = #expect(throws: ConfigStoreError.self) { try store.load() }
            #expect(error?.path == path)
            #expect(error?.problem.contains(problem) == true, "\(error?.problem ?? "")")
            #expect(error?.description.hasPrefix(path + ": ") == true)
        }
        // A file that cannot be read at all.
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        let error = #expect(throws: ConfigStoreError.self) { try store.load() }
        #expect(error?.problem.hasPrefix("cannot read") == true)
    }

    @Test func writesAreAtomic() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/vswiftd.db.json")
        let first = SwitchConfig(systemID: "one", bridges: [BridgeConfig(name: "br0", nextOfport: 1, ports: [], flows: ["actions=NORMAL"])])
        try store.save(first)
        var status = stat()
        #expect(stat(store.path, &status) == 0)
        #expect(status.st_mode & 0o777 == 0o600)
        let firstInode = status.st_ino

        // A crash before the rename leaves a stray PATH.tmp and the old file: the old file counts.
        try "half a fi".write(toFile: store.path + ".tmp", atomically: false, encoding: .utf8)
        #expect(try store.load() == first)

        // The new contents arrive by rename: a new inode, never the old file rewritten in place.
        let second = SwitchConfig(systemID: "two")
        try store.save(second)
        #expect(try store.load() == second)
        #expect(stat(store.path, &status) == 0)
        #expect(status.st_ino != firstInode)
        #expect(!FileManager.default.fileExists(atPath: store.path + ".tmp"))

        // When the new file cannot be written, the old one stays as it was.
        try FileManager.default.createDirectory(atPath: store.path + ".tmp", withIntermediateDirectories: false)
        #expect(throws: ConfigStoreError.self) { try store.save(first) }
        #expect(try store.load() == second)
    }

    /// A change that cannot be saved is refused and undone: what runs is what the file holds.
    @Test func aFailedSaveRefusesTheChangeAndUndoesIt() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/vswiftd.db.json")
        let h = Harness(store: store)
        try await h.ok("add-br", ["bridge": "br0"])
        try FileManager.default.createDirectory(atPath: store.path + ".tmp", withIntermediateDirectories: false)
        let error = await h.call("add-flow", ["bridge": "br0", "flow": "priority=5,actions=drop"]).error
        #expect(error?.code == RPCError.internalError("").code)
        #expect(error?.message.contains("refused and nothing changed") == true)
        #expect(try await h.flows("br0") == ["priority=0 actions=NORMAL"])
        #expect(h.datapath.flowTables["br0"]?.map(\.priority) == [0])
        try FileManager.default.removeItem(atPath: store.path + ".tmp")
        try await h.addFlow("br0", "priority=6,actions=drop")
        #expect(try store.load()?.bridges[0].flows == ["priority=6 actions=drop", "priority=0 actions=NORMAL"])
    }

    @Test func expiryIsSaved() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/vswiftd.db.json")
        let h = Harness(store: store)
        try await h.ok("add-br", ["bridge": "br0"])
        try await h.addFlow("br0", "hard_timeout=5,priority=5,actions=drop")
        #expect(try store.load()?.bridges[0].flows.count == 2)
        h.clock.now += 5
        await h.service.expireFlows()
        #expect(try store.load()?.bridges[0].flows == ["priority=0 actions=NORMAL"])
    }

    /// Flow changes on a big configuration go to the journal; a restart replays them in order and
    /// ends with the same table as a daemon that saved the whole file every time.
    @Test func flowChangesAreJournaledAndReplayed() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/vswiftd.db.json")
        let h = Harness(store: store, journalFromBytes: 0)
        try await h.ok("add-br", ["bridge": "br0"])
        try await h.ok("add-port", ["bridge": "br0", "port": "vnet0"])
        let fileAfterPorts = try #require(try store.load())
        #expect(!FileManager.default.fileExists(atPath: store.journal.path))
        try await h.addFlow("br0", "priority=1,in_port=3,actions=drop")
        _ = try await h.addFlows("br0", ["priority=5,ip,actions=output:vnet0", "# comment", "priority=5,arp,actions=drop",
                                   "priority=5,tcp,actions=drop"]).get()
        try await h.ok("del-flows", ["bridge": "br0", "match": "priority=5,arp", "strict": true])
        try await h.ok("mod-flows", ["bridge": "br0", "flow": "tcp,actions=output:1"])
        try await h.ok("del-flows", ["bridge": "br0", "match": "in_port=3"])
        try await h.addFlow("br0", "priority=1,in_port=3,actions=drop")  // re-added: now after the others of priority 1
        try await h.addFlow("br0", "priority=1,in_port=2,actions=drop")
        // The file itself did not change: every flow change is in the journal.
        #expect(try store.load() == fileAfterPorts)
        #expect(try store.journal.load(generation: fileAfterPorts.generation).map(\.method)
            == ["add-flow", "add-flows", "del-flows", "mod-flows", "del-flows", "add-flow", "add-flow"])

        let restored = Harness(devices: ["vnet0", "eth1", "eth2"], store: store)
        try await restored.service.restore(try #require(try store.load()))
        try await restored.service.replayJournal()
        #expect(try await restored.flows("br0") == h.flows("br0"))
        #expect(try await restored.flows("br0") == [
            "priority=5,ip actions=output:1", "priority=5,tcp actions=output:1", "priority=1,in_port=3 actions=drop",
            "priority=1,in_port=2 actions=drop", "priority=0 actions=NORMAL",
        ])
        // Saving folds the journal into a new file (a new generation) and deletes it.
        try await restored.service.save()
        #expect(!FileManager.default.fileExists(atPath: store.journal.path))
        let folded = try #require(try store.load())
        #expect(folded.generation == fileAfterPorts.generation + 1)
        #expect(folded.bridges[0].flows.count == 5)

        // A port change rewrites the file, and the journal starts again after it.
        try await h.ok("add-port", ["bridge": "br0", "port": "eth1"])
        #expect(!FileManager.default.fileExists(atPath: store.journal.path))
        #expect(try store.load()?.bridges[0].flows.count == 5)
        try await h.addFlow("br0", "priority=9,actions=drop")
        #expect(FileManager.default.fileExists(atPath: store.journal.path))
        // A bulk change (a record bigger than an eighth of the file) rewrites the file too.
        _ = try await h.addFlows("br0", (0..<3000).map { "priority=7,udp,tp_dst=\($0),actions=drop" }).get()
        #expect(!FileManager.default.fileExists(atPath: store.journal.path))
        #expect(try store.load()?.bridges[0].flows.count == 3006)
    }

    /// A journal that does not continue the file's generation (left by a crash after the file was
    /// written) is ignored; a record cut short at the end is ignored; damage elsewhere is an error.
    @Test func journalGenerationsAndDamage() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let journal = ConfigJournal(path: directory + "/j")
        let record = ConfigJournal.Record(method: "add-flow", params: .object(["bridge": "br0", "flow": "actions=drop"]))
        try journal.append(record, generation: 7)
        try journal.append(record, generation: 7)
        #expect(try journal.load(generation: 7) == [record, record])
        #expect(try journal.load(generation: 8) == [])
        let fd = open(journal.path, O_WRONLY | O_APPEND)
        _ = "{\"method\":\"add-fl".withCString { write(fd, $0, strlen($0)) }
        close(fd)
        #expect(try journal.load(generation: 7) == [record, record])
        try "{\"generation\":7}\nnot json\n{\"method\":\"add-flow\",\"params\":{}}\n".write(
            toFile: journal.path, atomically: false, encoding: .utf8)
        let error = #expect(throws: ConfigStoreError.self) { try journal.load(generation: 7) }
        #expect(error?.problem == "line 2 is not a journal record")
        journal.remove()
        #expect(try journal.load(generation: 7) == [])
    }

    /// A journal append that fails refuses the change; the next change rewrites the whole file.
    @Test func aFailedJournalAppendRefusesTheChange() async throws {
        let directory = try makeTemporaryDirectory("vswift-db")
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let store = ConfigStore(path: directory + "/vswiftd.db.json")
        let h = Harness(store: store, journalFromBytes: 0)
        try await h.ok("add-br", ["bridge": "br0"])
        try FileManager.default.createDirectory(atPath: store.journal.path, withIntermediateDirectories: false)
        let error = await h.call("add-flow", ["bridge": "br0", "flow": "priority=5,actions=drop"]).error
        #expect(error?.message.contains("could not be saved") == true)
        #expect(try await h.flows("br0") == ["priority=0 actions=NORMAL"])
        try FileManager.default.removeItem(atPath: store.journal.path)
        try await h.addFlow("br0", "priority=6,actions=drop")
        #expect(try store.load()?.bridges[0].flows == ["priority=6 actions=drop", "priority=0 actions=NORMAL"])
        #expect(!FileManager.default.fileExists(atPath: store.journal.path))
    }

    @Test func defaultPath() async {
        #expect(ConfigStore.defaultPath(environment: [:]) == "/var/lib/vswift/vswiftd.db.json")
        #expect(ConfigStore.defaultPath(environment: ["VSWIFT_DB": ""]) == "/var/lib/vswift/vswiftd.db.json")
        #expect(ConfigStore.defaultPath(environment: ["VSWIFT_DB": "/tmp/x.json"]) == "/tmp/x.json")
    }
}
