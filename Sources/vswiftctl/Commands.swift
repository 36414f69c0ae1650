import ArgumentParser
import Foundation
import SystemPackage
import VSwiftProtocol

struct VSwiftCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vswiftctl",
        abstract: "Configure and inspect vswiftd, the vswift virtual switch.",
        discussion: "Commands and output follow ovs-vsctl and ovs-ofctl.",
        version: VSwiftVersion.current,
        subcommands: [
            AddBridge.self, DeleteBridge.self, AddPort.self, DeletePort.self, AddUnderlay.self, DeleteUnderlay.self,
            Show.self, DumpPorts.self, DumpWorkers.self, AddFlow.self, AddFlows.self, ReplaceFlows.self, DeleteFlows.self, ModifyFlows.self, DumpFlows.self,
            Trace.self,
            Capture.self,
            AddMapServer.self, DeleteMapServer.self, AddMapResolver.self, DeleteMapResolver.self, AddEID.self, DeleteEID.self,
            AddMapCache.self, DeleteMapCache.self, ShowLISP.self, DumpMapCache.self,
            DumpXDPCache.self,
        ])

    // Declared here too so that, as with ovs-vsctl, the options may also come before the subcommand;
    // ArgumentParser hands them down to the subcommand's group of the same name.
    @OptionGroup var global: GlobalOptions
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

/// The options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(help: "vswiftd's control socket. (default: $VSWIFT_SOCKET, else /run/vswift/vswiftd.sock)")
    var socket: String?

    @Option(help: "Output format of show, dump-ports, dump-workers and dump-flows.")
    var format: OutputFormat = .text

    @Option(help: "Seconds to wait for vswiftd's answer; 0 waits forever. (default: 30; 600 for add-flows and replace-flows)")
    var timeout: Double?

    // Here rather than in del-flows and mod-flows so that, as with ovs-ofctl, it may come first:
    // `vswiftctl --strict del-flows br0 priority=5,in_port=1`.
    @Flag(help: "del-flows and mod-flows: only the flow with exactly this match and priority.")
    var strict = false

    func validate() throws {
        if let timeout {
            guard timeout.isFinite, timeout >= 0 else { throw ValidationError("--timeout must be a number of seconds, 0 or more") }
        }
    }

    /// Commands that may send a million flows wait longer by default.
    static let bulkTimeout: Double = 600

    private func client(defaultTimeout: Double = 30) -> ControlClient {
        ControlClient(
            socketPath: socket ?? ControlClient.defaultSocketPath(environment: ProcessInfo.processInfo.environment),
            timeout: .seconds(timeout ?? defaultTimeout))
    }

    /// Sends a method that changes something; like ovs-vsctl, success prints nothing. vswiftd's
    /// error is thrown as the `RPCError` it sent.
    func call(_ method: ControlMethod, _ params: some Encodable) throws {
        _ = try client().call(method.rawValue, params: JSONValue(encoding: params)).get()
    }

    /// `call` with params already in JSON form; prints the result only with `--format json`.
    func call(_ method: ControlMethod, json params: JSONValue, defaultTimeout: Double = 30) throws {
        let result = try client(defaultTimeout: defaultTimeout).call(method.rawValue, params: params).get()
        if format == .json && result != .null { print(formatJSON(result), terminator: "") }
    }

    /// `call` with the request line already written (`FlowFile.request`).
    func call(request: [UInt8], defaultTimeout: Double = 30) throws {
        let result = try client(defaultTimeout: defaultTimeout).call(request: request).get()
        if format == .json && result != .null { print(formatJSON(result), terminator: "") }
    }

    /// Sends a method and returns its result (vswiftd's error is thrown).
    func fetch(_ method: ControlMethod, _ params: JSONValue?, defaultTimeout: Double = 30) throws -> JSONValue {
        try client(defaultTimeout: defaultTimeout).call(method.rawValue, params: params).get()
    }

    /// Sends a method that reports something and prints its result as text or JSON.
    func report<Report: Decodable>(
        _ method: ControlMethod, _ params: JSONValue?, as type: Report.Type, text: (Report) -> String
    ) throws {
        switch format {
        case .json:
            print(formatJSON(try client().call(method.rawValue, params: params).get()), terminator: "")
        case .text:
            print(text(try client().call(method.rawValue, params: params, returning: type).get()), terminator: "")
        }
    }
}

struct AddBridge: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "add-br", abstract: "Create a bridge.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The bridge's name, also that of its internal port.") var bridge: String

    func run() throws {
        try global.call(.addBridge, BridgeParams(bridge: bridge))
    }
}

struct DeleteBridge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del-br", abstract: "Delete a bridge and all its ports.")

    @OptionGroup var global: GlobalOptions
    @Argument var bridge: String

    func run() throws {
        try global.call(.delBridge, BridgeParams(bridge: bridge))
    }
}

struct AddPort: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-port",
        abstract: "Add a network device, or a LISP tunnel, to a bridge.",
        usage: """
            vswiftctl add-port <bridge> <interface> [type=TYPE] [options:KEY=VALUE ...]
            vswiftctl add-port <bridge> <interface> -- set Interface <interface> [type=TYPE] [options:KEY=VALUE ...]
            """,
        discussion: "Example: vswiftctl add-port br2 lisp0 type=lisp options:remote_ip=192.168.1.252")

    @OptionGroup var global: GlobalOptions
    @Argument var bridge: String
    @Argument var interface: String
    // .allUnrecognized keeps the "--" of ovs-vsctl's "-- set Interface IF ..." form, which other
    // strategies swallow (and .captureForPassthrough stops --socket etc. from parsing here).
    @Argument(parsing: .allUnrecognized, help: "type=TYPE and options:KEY=VALUE settings.")
    var settings: [String] = []

    func run() throws {
        let (type, options) = try parsePortArguments(interface: interface, settings)
        try global.call(
            .addPort,
            AddPortParams(bridge: bridge, port: interface, type: type, options: options.isEmpty ? nil : options))
    }
}

struct DeletePort: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del-port",
        abstract: "Remove a port from its bridge.",
        usage: "vswiftctl del-port [<bridge>] <port>")

    @OptionGroup var global: GlobalOptions
    @Argument(help: .hidden) var names: [String] = []

    func validate() throws {
        guard (1...2).contains(names.count) else { throw ValidationError("expected [<bridge>] <port>") }
    }

    func run() throws {
        let params = names.count == 2 ? DelPortParams(bridge: names[0], port: names[1]) : DelPortParams(port: names[0])
        try global.call(.delPort, params)
    }
}

struct AddUnderlay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-underlay",
        abstract: "Carry LISP on a device the host keeps using.",
        discussion: """
            The device stays the host's: its addresses, routes and other traffic are untouched. Only \
            LISP packets (UDP to a LISP port's dst_port, 4341 by default) for one of the host's \
            addresses go to vswift, which decapsulates them; encapsulated packets whose route leaves \
            by the device are sent on it directly.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument var device: String

    func run() throws {
        try global.call(.addUnderlay, UnderlayParams(device: device))
    }
}

struct DeleteUnderlay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del-underlay", abstract: "Stop carrying LISP on a device (see add-underlay).")

    @OptionGroup var global: GlobalOptions
    @Argument var device: String

    func run() throws {
        try global.call(.delUnderlay, UnderlayParams(device: device))
    }
}

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show bridges, ports and interfaces.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try global.report(.show, nil, as: ShowReport.self, text: formatShow)
    }
}

struct DumpPorts: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump-ports", abstract: "Print port statistics of a bridge.")

    @OptionGroup var global: GlobalOptions
    @Argument var bridge: String
    @Argument(help: "Only this port.") var port: String?

    func run() throws {
        let params = try JSONValue(encoding: DumpPortsParams(bridge: bridge, port: port))
        try global.report(.dumpPorts, params, as: DumpPortsReport.self, text: formatDumpPorts)
    }
}

struct DumpWorkers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump-workers",
        abstract: "Print each worker's packets and where its time went, in cycles (cf. ovs-appctl dpif-netdev/pmd-stats-show), and the XDP flow cache's totals.")

    @OptionGroup var global: GlobalOptions

    func run() throws {
        try printWithXDPTotals()
    }
}

// MARK: Flows (ovs-ofctl)

struct AddFlow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-flow",
        abstract: "Add a flow; one with the same match and priority is replaced.",
        discussion: #"Example: vswiftctl add-flow br2 "priority=1,in_port=1,dl_type=0x0800,nw_src=10.1.1.0/24,actions=output:2""#)

    @OptionGroup var global: GlobalOptions
    @Argument var bridge: String
    @Argument(help: "The flow in ovs-ofctl syntax (match fields, then actions=...).") var flow: String

    func run() throws {
        try global.call(.addFlow, AddFlowParams(bridge: bridge, flow: flow))
    }
}

struct AddFlows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-flows",
        abstract: "Add the flows of a file, one per line; all or none.",
        discussion: "Blank lines and # comments are allowed. A bad line rejects the whole file, naming the line.")

    @OptionGroup var global: GlobalOptions
    @Argument var bridge: String
    @Argument(help: "The flow file, or - for standard input.") var file: String

    func run() throws {
        try sendFlowFile(.addFlows, global: global, bridge: bridge, file: file)
    }
}

struct ReplaceFlows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replace-flows",
        abstract: "Make the bridge's flows exactly those of a file.",
        discussion: "Flows that are already there unchanged keep their counters. All or nothing.")

    @OptionGroup var global: GlobalOptions
    @Argument var bridge: String
    @Argument(help: "The flow file, or - for standard input.") var file: String

    func run() throws {
        try sendFlowFile(.replaceFlows, global: global, bridge: bridge, file: file)
    }
}

/// Sends a flow file's lines with `method` (add-flows, replace-flows); errors name the file.
private func sendFlowFile(_ method: ControlMethod, global: GlobalOptions, bridge: String, file: String) throws {
    let request = FlowFile.request(id: 1, method: method.rawValue, bridge: bridge, file: try readFlowFile(file))
    try withFileName(file) {
        try global.call(request: request, defaultTimeout: GlobalOptions.bulkTimeout)
    }
}

struct DeleteFlows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "del-flows",
        abstract: "Delete flows: all of them, or those matching.",
        discussion: """
            Without a match every flow goes, and the bridge then drops every packet. With a match, every \
            flow at least as specific goes, whatever its priority; with --strict, only the flow with exactly \
            that match and priority. cookie=VALUE/MASK keeps only flows whose cookie equals VALUE in MASK's \
            bits; out_port=PORT only flows with an action that outputs to PORT.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument var bridge: String
    @Argument(help: "Match fields in ovs-ofctl syntax, e.g. in_port=1,dl_type=0x0806,out_port=2.") var match: String?

    func run() throws {
        try global.call(.delFlows, json: try JSONValue(encoding: DelFlowsParams(bridge: bridge, match: match, strict: global.strict ? true : nil)))
    }
}

struct ModifyFlows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mod-flows",
        abstract: "Change the actions of the flows matching.",
        discussion: """
            Counters are kept. Without --strict every flow at least as specific as the match is changed. As \
            with ovs-ofctl: cookie=VALUE/MASK selects by cookie (and then nothing is added); otherwise the \
            changed flows take the flow's cookie (0 if it has none) and the flow is added when none matches.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument var bridge: String
    @Argument(help: "A flow in ovs-ofctl syntax: match fields, then actions=...") var flow: String

    func run() throws {
        try global.call(.modFlows, json: try JSONValue(encoding: ModFlowsParams(bridge: bridge, flow: flow, strict: global.strict ? true : nil)))
    }
}

struct DumpFlows: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump-flows", abstract: "Print the flows of a bridge with their counters.")

    @OptionGroup var global: GlobalOptions
    @Argument var bridge: String
    @Argument(help: "Only flows at least as specific as this match (also cookie=VALUE/MASK, out_port=PORT).") var match: String?

    func run() throws {
        switch global.format {
        case .json:
            let params = try JSONValue(encoding: DumpFlowsParams(bridge: bridge, match: match))
            print(formatJSON(try global.fetch(.dumpFlows, params)), terminator: "")
        case .text:
            // Text lines made by vswiftd; a vswiftd that does not know `text` sends the fields.
            let params = try JSONValue(encoding: DumpFlowsParams(bridge: bridge, match: match, text: true))
            let result = try global.fetch(.dumpFlows, params)
            if case .object(let members) = result, case .array(let lines)? = members["lines"] {
                try writeDumpFlowLines(lines)
            } else {
                print(formatDumpFlows(try DumpFlowsReport(json: result)), terminator: "")
            }
        }
    }
}

/// Writes dump-flows' header and `lines` to standard output through one buffer (a million
/// `print`s, or one string of them all, cost seconds).
private func writeDumpFlowLines(_ lines: [JSONValue]) throws {
    var out: [UInt8] = Array("NXST_FLOW reply (xid=0x4):\n".utf8)
    out.reserveCapacity(1 << 20)
    for line in lines {
        guard case .string(let text) = line else { throw CommandError(description: "vswiftd sent a flow line that is not a string") }
        out.append(contentsOf: text.utf8)
        out.append(UInt8(ascii: "\n"))
        if out.count >= 1 << 20 {
            try writeStandardOutput(out)
            out.removeAll(keepingCapacity: true)
        }
    }
    try writeStandardOutput(out)
}

private func writeStandardOutput(_ bytes: [UInt8]) throws {
    do {
        try FileDescriptor.standardOutput.writeAll(bytes)
    } catch {
        throw CommandError(description: "cannot write the output: \(error)")
    }
}

/// A failure of vswiftctl itself (not of vswiftd), printed as `vswiftctl: MESSAGE`.
struct CommandError: Error, CustomStringConvertible {
    var description: String
}

/// The bytes of a flow file (or of standard input for "-"); `FlowFile` makes them a request.
func readFlowFile(_ path: String) throws -> [UInt8] {
    if path == "-" { return [UInt8](FileHandle.standardInput.readDataToEndOfFile()) }
    do {
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    } catch {
        throw CommandError(description: "cannot read \(path): \((error as NSError).localizedDescription)")
    }
}

/// Puts the file's name in front of vswiftd's `line N: …` errors.
func withFileName(_ file: String, _ body: () throws -> Void) throws {
    do {
        try body()
    } catch var error as RPCError where error.message.hasPrefix("line ") {
        error.message = "\(file == "-" ? "(stdin)" : file): \(error.message)"
        throw error
    }
}
