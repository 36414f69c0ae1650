import ArgumentParser
import Foundation
import VSwiftControl

struct VSwiftCtl: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vswiftctl",
        abstract: "Configure and inspect vswiftd, the vswift virtual switch.",
        discussion: "Commands and output follow ovs-vsctl and ovs-ofctl.",
        subcommands: [AddBridge.self, DeleteBridge.self, AddPort.self, DeletePort.self, Show.self, DumpPorts.self])

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

    @Option(help: "Output format of show and dump-ports.")
    var format: OutputFormat = .text

    @Option(help: "Seconds to wait for vswiftd's answer; 0 waits forever.")
    var timeout: Double = 30

    func validate() throws {
        guard timeout.isFinite, timeout >= 0 else { throw ValidationError("--timeout must be a number of seconds, 0 or more") }
    }

    private var client: ControlClient {
        ControlClient(
            socketPath: socket ?? ControlClient.defaultSocketPath(environment: ProcessInfo.processInfo.environment),
            timeout: .seconds(timeout))
    }

    /// Sends a method that changes something; like ovs-vsctl, success prints nothing. vswiftd's
    /// error is thrown as the `RPCError` it sent.
    func call(_ method: ControlMethod, _ params: some Encodable) throws {
        _ = try client.call(method.rawValue, params: JSONValue(encoding: params)).get()
    }

    /// Sends a method that reports something and prints its result as text or JSON.
    func report<Report: Decodable>(
        _ method: ControlMethod, _ params: JSONValue?, as type: Report.Type, text: (Report) -> String
    ) throws {
        switch format {
        case .json:
            print(formatJSON(try client.call(method.rawValue, params: params).get()), terminator: "")
        case .text:
            print(text(try client.call(method.rawValue, params: params, returning: type).get()), terminator: "")
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
