import ArgumentParser
import VSwiftProtocol

// The LISP mapping system's verbs (issue 16): map-servers, map-resolvers, local EIDs, static
// map-cache entries, and what vswiftd knows of them.

struct AddMapServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-map-server",
        abstract: "Register the local EIDs with a LISP map-server (RFC 9301).",
        discussion: """
            vswiftd sends a Map-Register to every map-server every 60 s and on every change, \
            authenticated with the key (kept in vswiftd's configuration file, never shown). \
            --algorithm is hmac-sha-256-128 (the default; also sha256 or 2) or hmac-sha-1-96 \
            (sha1 or 1); with it, --key-id is RFC 9301's Key ID, 0 (the default) to 255, which \
            names the secret shared with the map-server. Without --algorithm, --key-id keeps its \
            RFC 6830 meaning: 1 is HMAC-SHA-1-96, 2 HMAC-SHA-256-128, with Key ID 0.
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The map-server's IPv4 or IPv6 address.") var address: String
    @Option(help: "The key shared with the map-server (its password).") var key: String
    @Option(help: "hmac-sha-256-128 (default) or hmac-sha-1-96 (RFC 9301 §12.5; also sha256, sha1, 2, 1).") var algorithm: String?
    @Option(help: "With --algorithm: RFC 9301's Key ID, 0-255 (default 0). Without: 1 (HMAC-SHA-1-96) or 2 (HMAC-SHA-256-128).")
    var keyId: Int?

    func validate() throws {
        if algorithm == nil, let keyId, keyId != 1 && keyId != 2 {
            throw ValidationError("--key-id without --algorithm must be 1 (HMAC-SHA-1-96) or 2 (HMAC-SHA-256-128)")
        }
        if algorithm != nil, let keyId, !(0...255).contains(keyId) { throw ValidationError("--key-id must be from 0 to 255") }
        guard !key.isEmpty else { throw ValidationError("--key must not be empty") }
    }

    func run() throws {
        try global.call(.addMapServer, AddMapServerParams(address: address, key: key, keyID: keyId, algorithm: algorithm))
    }
}

struct DeleteMapServer: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-map-server", abstract: "Stop registering with a map-server.")

    @OptionGroup var global: GlobalOptions
    @Argument var address: String

    func run() throws {
        try global.call(.delMapServer, LISPAddressParams(address: address))
    }
}

struct AddMapResolver: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-map-resolver",
        abstract: "Ask a LISP map-resolver where remote EIDs are (Encapsulated Map-Requests, RFC 9301).",
        discussion: "Map-resolvers are asked in the order they were added.")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The map-resolver's IPv4 or IPv6 address.") var address: String

    func run() throws {
        try global.call(.addMapResolver, LISPAddressParams(address: address))
    }
}

struct DeleteMapResolver: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-map-resolver", abstract: "Stop using a map-resolver.")

    @OptionGroup var global: GlobalOptions
    @Argument var address: String

    func run() throws {
        try global.call(.delMapResolver, LISPAddressParams(address: address))
    }
}

struct AddEID: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-eid",
        abstract: "Register a local EID prefix of an instance id with the map-servers.",
        discussion: """
            Without --rloc the prefix is registered with the host's address toward each map-server \
            (the address its underlay route uses; found again every 30 s, so an address change \
            re-registers). Example: vswiftctl add-eid 1000 10.1.0.0/16 --rloc 192.0.2.1,priority=1,weight=50
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The instance id (0 to 16777215).") var iid: UInt32
    @Argument(help: "The EID prefix, e.g. 10.1.0.0/16 or fd00:1::/48.") var prefix: String
    @Option(help: "ADDRESS[,priority=P][,weight=W] (priority 1 and weight 100 by default); may be repeated.")
    var rloc: [String] = []

    func run() throws {
        let rlocs = try rloc.map(parseRLOCArgument)
        try global.call(.addEID, EIDParams(instanceID: iid, prefix: prefix, rlocs: rlocs.isEmpty ? nil : rlocs))
    }
}

struct DeleteEID: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-eid", abstract: "Stop registering a local EID prefix.")

    @OptionGroup var global: GlobalOptions
    @Argument var iid: UInt32
    @Argument var prefix: String

    func run() throws {
        try global.call(.delEID, EIDParams(instanceID: iid, prefix: prefix))
    }
}

struct AddMapCache: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-map-cache",
        abstract: "Add a static map-cache entry (it never expires).",
        discussion: "Example: vswiftctl add-map-cache 1000 10.2.0.0/16 192.0.2.2,priority=1,weight=100 198.51.100.2,priority=2")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The instance id (0 to 16777215).") var iid: UInt32
    @Argument(help: "The EID prefix.") var prefix: String
    @Argument(help: "RLOC[,priority=P][,weight=W], one or more.") var rlocs: [String]

    func run() throws {
        try global.call(.addMapCache, EIDParams(instanceID: iid, prefix: prefix, rlocs: try rlocs.map(parseRLOCArgument)))
    }
}

struct DeleteMapCache: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "del-map-cache", abstract: "Remove a static map-cache entry.")

    @OptionGroup var global: GlobalOptions
    @Argument var iid: UInt32
    @Argument var prefix: String

    func run() throws {
        try global.call(.delMapCache, EIDParams(instanceID: iid, prefix: prefix))
    }
}

struct ShowLISP: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show-lisp",
        abstract: "Show the LISP control configuration (keys never), registration per map-server and message counters.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "The report as JSON (as --format json).") var json = false

    func run() throws {
        var options = global
        if json { options.format = .json }
        try options.report(.showLISP, nil, as: ShowLISPReport.self, text: formatShowLISP)
    }
}

struct DumpMapCache: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump-map-cache",
        abstract: "Print the LISP map-cache: EID prefix, instance id, RLOCs with priority/weight/status, TTL left, source.")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "The report as JSON (as --format json).") var json = false

    func run() throws {
        var options = global
        if json { options.format = .json }
        try options.report(.dumpMapCache, nil, as: DumpMapCacheReport.self, text: formatDumpMapCache)
    }
}
