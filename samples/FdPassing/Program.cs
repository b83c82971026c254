// SPDX-License-Identifier: MIT
// Privilege separation with passed fds (see README.md). One program, two roles:
//   launcher (default): privileged; opens /dev/iommu and the device's cdev, sends them over a Unix socket and starts
//                       the worker as another user with the other end of the socket inherited;
//   worker:             unprivileged; a Generic Host that receives the fds (Vfio:FdSocket) and drives edu with them.
// Exit code 0 when the worker's checks passed, 1 otherwise.
using Vfio.Samples.FdPassing;

return args is ["worker", .. string[] workerArgs]
    ? await Worker.RunAsync(workerArgs, kernel: null)
    : await Launcher.RunAsync(args);
