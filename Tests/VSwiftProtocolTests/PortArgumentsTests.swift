import Testing
import VSwiftProtocol

@Suite struct PortArgumentsTests {
    @Test func settings() throws {
        let parsed = try parsePortArguments(interface: "lisp0", ["type=lisp", "options:remote_ip=1.2.3.4"])
        #expect(parsed.type == "lisp")
        #expect(parsed.options == ["remote_ip": "1.2.3.4"])
    }

    @Test func noSettings() throws {
        let parsed = try parsePortArguments(interface: "vnet0", [])
        #expect(parsed.type == nil)
        #expect(parsed.options.isEmpty)
    }

    @Test func ovsVsctlSetInterfaceForm() throws {
        let parsed = try parsePortArguments(
            interface: "lisp0",
            ["--", "set", "Interface", "lisp0", "type=lisp", "options:remote_ip=192.168.1.252", #"options:key="7""#])
        #expect(parsed.type == "lisp")
        #expect(parsed.options == ["remote_ip": "192.168.1.252", "key": "7"])
    }

    @Test func valueMayContainEquals() throws {
        #expect(try parsePortArguments(interface: "p", ["options:k=a=b"]).options == ["k": "a=b"])
    }

    @Test func otherInterfaceIsRefused() {
        #expect(
            throws: PortArgumentError(#""-- set Interface lisp1" names another interface than the one being added, "lisp0""#)
        ) {
            try parsePortArguments(interface: "lisp0", ["--", "set", "Interface", "lisp1", "type=lisp"])
        }
    }

    @Test func otherCommandsAfterDashDashAreRefused() {
        let expected = PortArgumentError(
            #"after "--" only "set Interface lisp0 SETTINGS..." is supported, not "set Bridge br0""#)
        #expect(throws: expected) {
            try parsePortArguments(interface: "lisp0", ["--", "set", "Bridge", "br0", "stp_enable=true"])
        }
        #expect(throws: PortArgumentError(#"after "--" only "set Interface lisp0 SETTINGS..." is supported"#)) {
            try parsePortArguments(interface: "lisp0", ["--"])
        }
    }

    @Test func malformedTokens() {
        #expect(
            throws: PortArgumentError(#"unrecognized argument "lisp" (expected type=TYPE or options:KEY=VALUE)"#)
        ) { try parsePortArguments(interface: "p", ["lisp"]) }
        #expect(
            throws: PortArgumentError(#"unrecognized argument "remote_ip=1.2.3.4" (expected type=TYPE or options:KEY=VALUE)"#)
        ) { try parsePortArguments(interface: "p", ["remote_ip=1.2.3.4"]) }
        #expect(throws: PortArgumentError(#""options:remote_ip" is not of the form options:KEY=VALUE"#)) {
            try parsePortArguments(interface: "p", ["options:remote_ip"])
        }
        #expect(throws: PortArgumentError(#""options:=1" is not of the form options:KEY=VALUE"#)) {
            try parsePortArguments(interface: "p", ["options:=1"])
        }
        #expect(throws: PortArgumentError("type is given twice")) {
            try parsePortArguments(interface: "p", ["type=lisp", "type=internal"])
        }
        #expect(throws: PortArgumentError("options:k is given twice")) {
            try parsePortArguments(interface: "p", ["options:k=1", "options:k=2"])
        }
    }
}
