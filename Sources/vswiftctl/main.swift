import ArgumentParser
import Foundation
import VSwiftProtocol

// Usage errors are ArgumentParser's to report; failures past parsing are reported the way
// ovs-vsctl does: "vswiftctl: <message>" on stderr, exit status 1.
do {
    var command = try VSwiftCtl.parseAsRoot()
    try command.run()
} catch let error as ControlClientError {
    fail(error.description)
} catch let error as RPCError {
    fail(error.message)
} catch let error as PortArgumentError {
    fail(error.description)
} catch let error as CommandError {
    fail(error.description)
} catch {
    VSwiftCtl.exit(withError: error)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("vswiftctl: \(message)\n".utf8))
    exit(1)
}
