import Foundation
import Glibc
import Testing
import VSwiftTesting
import VSwiftControl
import VSwiftProtocol

/// Issue 13, defects 2–4, against a real vswiftd and vswiftctl: files and the control socket in
/// directories others can change, and changes that cannot be saved.
extension Integration {
    @Suite struct TrustBoundaryIntegrationTests {
        /// The flows of `bridge` without counters or ages: what a restart must bring back.
        private static func flows(_ daemon: Daemon, _ bridge: String) throws -> [String] {
            try daemon.call("dump-flows", .object(["bridge": .string(bridge)])).get().decode(DumpFlowsReport.self).flows
                .map { "cookie=\($0.cookie),priority=\($0.priority),\($0.match) actions=\($0.actions)" }
        }

        @Test("with the db on a full tmpfs, every change is refused and the old state runs and survives a restart")
        func fullFileSystemRefusesChanges() throws {
            let topology = Topology()
            defer { topology.destroy() }
            let sw = try topology.namespace("sw")
            try topology.veth("v1", in: sw, "v1p", in: sw)
            try topology.veth("v2", in: sw, "v2p", in: sw)
            let directory = "/tmp/\(sw).dbfs"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            defer { rmdir(directory) }
            try run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", directory])
            defer { _ = try? run(["umount", "-l", directory], check: false) }
            let db = directory + "/db.json"
            var daemon = try Daemon(namespace: sw, extraArguments: ["--db", db])
            defer { daemon.stop() }
            try daemon.ctl("add-br", "br0")
            try daemon.ctl("add-port", "br0", "v1")
            try daemon.ctl("add-flow", "br0", "priority=5,in_port=v1,actions=drop")
            let show = try daemon.ctl("show").stdout
            let flows = try Self.flows(daemon, "br0")
            let saved = try #require(try ConfigStore(path: db).load())

            // Fill the file system to the last block.
            _ = try run(["dd", "if=/dev/zero", "of=\(directory)/filler", "bs=4k"], check: false)
            let flowFile = "/tmp/\(sw).flows"
            try (1...500).map { "priority=3,udp,tp_dst=\($0),actions=drop" }.joined(separator: "\n")
                .write(toFile: flowFile, atomically: true, encoding: .utf8)
            defer { unlink(flowFile) }
            let refused: [[String]] = [
                ["add-flows", "br0", flowFile], ["add-flow", "br0", "priority=9,actions=drop"], ["add-br", "br1"],
                ["add-port", "br0", "v2"], ["del-port", "v1"], ["del-flows", "br0"], ["del-br", "br0"],
            ]
            for command in refused {
                let result = try run([Paths.vswiftctl, "--socket", daemon.socketPath] + command, check: false)
                #expect(result.status != 0, "\(command)")
                #expect(result.stderr.contains("refused and nothing changed"), "\(command): \(result.stderr)")
                #expect(try daemon.ctl("show").stdout == show, "\(command)")
                #expect(try Self.flows(daemon, "br0") == flows, "\(command)")
            }
            // The datapath too: v2 was never attached, v1 still is.
            #expect(!hasXDP(namespace: sw, interface: "v2"))
            #expect(hasXDP(namespace: sw, interface: "v1"))
            #expect(try ConfigStore(path: db).load() == saved)

            daemon.stop()
            unlink(directory + "/filler")
            daemon = try Daemon(namespace: sw, freshConfiguration: false, extraArguments: ["--db", db])
            #expect(try daemon.ctl("show").stdout == show)
            #expect(try Self.flows(daemon, "br0") == flows)
            // With room again, changes go through.
            try daemon.ctl("add-flows", "br0", flowFile)
            #expect(try Self.flows(daemon, "br0").count == flows.count + 500)
        }

        @Test("vswiftd refuses a db or socket directory others can write, and a planted temporary file")
        func unsafeDirectoriesStopTheStart() throws {
            let directory = "/tmp/vswift-unsafe-\(uniqueTag())"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
            defer { try? FileManager.default.removeItem(atPath: directory) }
            chmod(directory, 0o777)
            let victim = directory + "/victim"
            try "root's file\n".write(toFile: victim, atomically: false, encoding: .utf8)
            chmod(victim, 0o644)
            func start(db: String, socket: String) throws -> CommandResult {
                try run(["timeout", "20", Paths.vswiftd, "--db", db, "--socket", socket, "--bpf-dir", Paths.bpfDir], check: false)
            }
            let writableDB = try start(db: directory + "/db.json", socket: "/tmp/\(SafeTag.tag)-ok.sock")
            #expect(writableDB.status != 0)
            #expect((writableDB.stderr + writableDB.stdout).contains("writable by group or others"))
            let writableSocket = try start(db: "/tmp/\(SafeTag.tag)-ok.db.json", socket: directory + "/ctl.sock")
            #expect(writableSocket.status != 0)
            #expect((writableSocket.stderr + writableSocket.stdout).contains("writable by group or others"))
            // Sticky (like /tmp), with `db.json.tmp -> victim` planted by another user.
            chmod(directory, 0o1777)
            #expect(symlink(victim, directory + "/db.json.tmp") == 0)
            let planted = try start(db: directory + "/db.json", socket: "/tmp/\(SafeTag.tag)-ok.sock")
            #expect(planted.status != 0)
            #expect((planted.stderr + planted.stdout).contains("db.json.tmp"))
            #expect((try? String(contentsOfFile: victim, encoding: .utf8)) == "root's file\n")
            unlink("/tmp/\(SafeTag.tag)-ok.db.json")
        }

        @Test("an impostor listening in vswiftd's socket's place is refused by vswiftctl and survives vswiftd's exit")
        func impostorSocket() throws {
            let topology = Topology()
            defer { topology.destroy() }
            let sw = try topology.namespace("sw")
            let daemon = try Daemon(namespace: sw)
            defer { daemon.stop() }
            try daemon.ctl("show")
            // What another user could do in a directory they may write: move the socket away and
            // listen in its place (as uid nobody).
            #expect(rename(daemon.socketPath, daemon.socketPath + ".moved") == 0)
            defer { unlink(daemon.socketPath + ".moved") }
            let impostor = try unixListener(daemon.socketPath, asUID: 65534)
            defer {
                close(impostor)
                unlink(daemon.socketPath)
            }
            let result = try daemon.ctl("add-br", "br0", check: false)
            #expect(result.status != 0)
            #expect(result.stderr.contains("served by uid 65534"), "\(result.stderr)")
            daemon.stop()
            var status = stat()
            #expect(lstat(daemon.socketPath, &status) == 0 && status.st_mode & S_IFMT == S_IFSOCK)
        }
    }
}

private enum SafeTag {
    static let tag = "vswift-safe-\(uniqueTag())"
}
