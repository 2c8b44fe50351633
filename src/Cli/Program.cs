using NbpEngine.Cli;

return await GenerateCommand.InvokeAsync(args);
