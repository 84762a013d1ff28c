args-replace-cmd
