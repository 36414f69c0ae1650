import Foundation
import Testing
import VSwiftTesting

/// vswiftctl is VSwiftProtocol and ArgumentParser only: it must not link the datapath's libraries
/// (libxdp, libbpf) nor NIO, which is what the protocol module is for (issue 14). Checked on the
/// vswiftctl built next to this test binary (or in `VSWIFT_BIN_DIR`); without one the test is
/// skipped, except under CI=true, where it fails.
@Suite struct ClientLinkageTests {
    static let binary: String = {
        if let directory = ProcessInfo.processInfo.environment["VSWIFT_BIN_DIR"] { return directory + "/vswiftctl" }
        let tests = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return tests.deletingLastPathComponent().appendingPathComponent("vswiftctl").path
    }()

    @Test(.enabled(if: TestMachine.isCI || FileManager.default.isExecutableFile(atPath: binary), "vswiftctl is not built"))
    func vswiftctlLinksNeitherTheDatapathLibrariesNorNIO() throws {
        let ldd = Process()
        ldd.executableURL = URL(fileURLWithPath: "/usr/bin/ldd")
        ldd.arguments = [Self.binary]
        let output = Pipe()
        ldd.standardOutput = output
        try ldd.run()
        let libraries = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        ldd.waitUntilExit()
        #expect(ldd.terminationStatus == 0, "ldd \(Self.binary) failed")
        #expect(libraries.contains("libswiftCore"), "ldd printed no libraries: \(libraries)")
        let datapathLibraries = libraries.split(separator: "\n").filter { line in
            ["libxdp", "libbpf", "libelf"].contains { line.contains($0) }
        }
        #expect(datapathLibraries.isEmpty, "vswiftctl links the datapath's libraries")
        // NIO is linked statically: its modules' names would be in the symbols.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.binary))
        let nioModules = ["NIOCore", "NIOPosix"].filter { bytes.range(of: Data($0.utf8)) != nil }
        #expect(nioModules.isEmpty, "vswiftctl contains NIO")
    }
}
