using System.CommandLine;
using NbpEngine.Cli;

return await GenerateCommand.Build().Parse(args).InvokeAsync();
