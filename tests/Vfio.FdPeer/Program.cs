// SPDX-License-Identifier: MIT
// The second process of the fd-passing tests. Exit codes: 0 success, 2 usage, 3 timeout, 4 wrong data (an
// exception, e.g. a failed edu-worker step, exits non-zero with the message on stderr).
using System.Net.Sockets;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Vfio.Core;

IKernel kernel = LinuxKernel.Instance;
switch (args)
{
    case ["send", string socketPath, string filePath]:
    {
        // Opens a file and an eventfd, sends both, then waits for the peer to signal the eventfd.
        using Socket socket = Connect(socketPath);
        VfioException.ThrowIfFailed(kernel.Open(filePath, OpenFlags.ReadWrite, out SafeFileHandle file), "open", filePath);
        using (file)
        using (var done = new InterruptEvent())
        {
            FdPassing.Send(socket, [new NamedFd("file", file), new NamedFd("done", done.Handle)]);
            return done.TryWait(TimeSpan.FromSeconds(30), out _) ? 0 : 3;
        }
    }
    case ["receive", string socketPath, string text]:
    {
        // Receives "file" and "done", writes text into the file through the received fd, signals "done".
        using Socket socket = Connect(socketPath);
        using ReceivedFds fds = await FdPassing.ReceiveAsync(socket);
        using SafeFileHandle file = fds.Take("file");
        using var done = new InterruptEvent(fds.Take("done"), ownsHandle: true);
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        VfioException.ThrowIfFailed(kernel.PWrite(file, bytes, 0), "pwrite", "received file");
        done.Signal();
        return 0;
    }
    case ["adopt", string fdText, string expected]:
    {
        // Adopts an inherited fd by number and checks what it reads.
        using SafeFileHandle file = FdPassing.AdoptInherited(int.Parse(fdText, System.Globalization.CultureInfo.InvariantCulture), ownsHandle: true);
        byte[] buffer = new byte[256];
        long n = VfioException.ThrowIfFailed(kernel.PRead(file, buffer, 0), "pread", "inherited fd");
        string read = Encoding.UTF8.GetString(buffer, 0, (int)n).TrimEnd('\0');
        Console.Out.Write(read);
        return read == expected ? 0 : 4;
    }
    case ["expect", string socketPath, .. string[] expectations]:
    {
        // Receives fds and checks each is of the kind named: name=Kind (VfioFdKind), printing what it found.
        using Socket socket = Connect(socketPath);
        using ReceivedFds fds = await FdPassing.ReceiveAsync(socket);
        foreach (string expectation in expectations)
        {
            string[] parts = expectation.Split('=', 2);
            using SafeFileHandle fd = fds.Take(parts[0]);
            VfioFdIdentity identity = VfioFdValidator.Expect(kernel, fd, Enum.Parse<VfioFdKind>(parts[1]), parts[0]);
            Console.Out.WriteLine($"{parts[0]}: {identity.Kind} {identity.Name} {identity.DeviceName}");
        }
        return 0;
    }
    case ["edu-worker", string fdText, string device]:
    {
        // Attaches edu through the fds sent on the inherited socket fdText and does a DMA round trip (EduWorker).
        Console.Out.Write(Vfio.FdPeer.EduWorker.Run(kernel, int.Parse(fdText, System.Globalization.CultureInfo.InvariantCulture), device));
        return 0;
    }
    default:
        Console.Error.WriteLine("usage: Vfio.FdPeer send <socket> <file> | receive <socket> <text> | adopt <fd> <expected> | expect <socket> name=Kind... | edu-worker <socket fd> <edu address>");
        return 2;
}

static Socket Connect(string path)
{
    var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    try
    {
        socket.Connect(new UnixDomainSocketEndPoint(path));
        return socket;
    }
    catch
    {
        socket.Dispose();
        throw;
    }
}
