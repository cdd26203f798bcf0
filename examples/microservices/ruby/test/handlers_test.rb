# frozen_string_literal: true

require 'test_helper'

# The five handlers, without a broker: the validation, error codes and
# results of the Rust handlers (examples/microservices/src/lib.rs), and
# `language`.
class HandlersTest < Minitest::Test
  include Microservices::StepHandlers

  RFC3339 = /\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00\z/

  def create(user_info, task_id: SecureRandom.uuid)
    CreateUserAccountHandler.new.call(step_context('create_user_account', context: { 'user_info' => user_info },
                                                                          task_id:))
  end

  def assert_refused(code, message = nil, retryable: false, &block)
    error = assert_raises(TaskerWorker::StepError, &block)
    assert_equal [code, retryable], [error.code, error.retryable?]
    assert_match message, error.message if message
    error
  end

  def test_an_account_is_created_from_a_valid_email
    task_id = SecureRandom.uuid
    result = create({ 'email' => 'New.User@Example.com', 'name' => 'Jane', 'plan' => 'pro' }, task_id:)
    assert_match(/\Ausr_\h{24}\z/, result['user_id'])
    expected = { 'email' => 'new.user@example.com', 'name' => 'Jane', 'plan' => 'pro', 'status' => 'created',
                 'email_verified' => false, 'language' => 'ruby' }
    assert_equal expected, result.slice(*expected.keys)
    assert_match(/\A\h{32}\z/, result['verification_token'])
    assert_match RFC3339, result['created_at']
    # The same step of the same task finds the same account.
    assert_equal result['user_id'], create({ 'email' => 'a@b.co' }, task_id:)['user_id']
    refute_equal result['user_id'], create({ 'email' => 'a@b.co' })['user_id']
  end

  def test_the_user_id_is_the_rust_handlers
    # uuid v5 (OID namespace) of "<task_id>:create_user_account", as uuid's
    # new_v5 gives it.
    task_id = '00000000-0000-0000-0000-000000000001'
    expected = TaskerWorker::Messages.uuid_v5('6ba7b812-9dad-11d1-80b4-00c04fd430c8',
                                              "#{task_id}:create_user_account").delete('-')[0, 24]
    assert_equal "usr_#{expected}", create({ 'email' => 'a@b.co' }, task_id:)['user_id']
  end

  def test_a_plan_defaults_to_free_and_a_name_to_null
    result = create({ 'email' => 'a@b.co' })
    assert_equal ['free', nil], result.values_at('plan', 'name')
    assert result.key?('name')
  end

  def test_emails_are_refused_permanently
    assert_refused('MISSING_EMAIL', /\AEmail address is required\z/) { create({}) }
    assert_refused('MISSING_EMAIL') { create({ 'email' => '  ' }) }
    assert_refused('MISSING_EMAIL') do
      CreateUserAccountHandler.new.call(step_context('create_user_account'))
    end
    ['no-at-sign.com', 'a@nodot', 'a b@example.com', 'a@b@example.com', '@b.co', 'a@.co', 'a@b.'].each do |email|
      assert_refused('INVALID_EMAIL', /\AInvalid email format: #{Regexp.escape(email)}\z/) do
        create({ 'email' => email })
      end
    end
    assert_refused('BLOCKED_EMAIL_DOMAIN', /\ADisposable email addresses are not allowed: mailinator\.com\z/) do
      create({ 'email' => 'x@Mailinator.COM' })
    end
  end

  def test_malformed_user_info_is_invalid_input
    assert_refused('invalid_input', /user_info/) { create('a@b.co') }
    assert_refused('invalid_input', /`email`/) { create({ 'email' => 5 }) }
    # Every field is read before the email is checked, as the Rust handler
    # decodes them together.
    assert_refused('invalid_input', /`plan`/) { create({ 'email' => 'bad', 'plan' => 1 }) }
  end

  def test_email_shapes
    assert CreateUserAccountHandler.email?('new.user@example.com')
    refute CreateUserAccountHandler.email?('no-at-sign.com')
    refute CreateUserAccountHandler.email?('a@nodot')
    refute CreateUserAccountHandler.email?('a b@example.com')
    refute CreateUserAccountHandler.email?('a@b@example.com')
  end

  def billing(plan, **options)
    SetupBillingProfileHandler.new(Microservices::Latency.none, **options)
                              .call(step_context('setup_billing_profile',
                                                 dependency_results: { 'create_user_account' => account(plan:) }))
  end

  def test_paid_plans_start_with_a_trial
    result = billing('pro')
    expected = { 'billing_id' => 'bill_0123456789abcdef01234567', 'user_id' => 'usr_0123456789abcdef01234567',
                 'plan' => 'pro', 'trial_days' => 14, 'billing_status' => 'trialing', 'language' => 'ruby' }
    assert_equal expected, result.slice(*expected.keys)
    assert_match RFC3339, result['created_at']
    assert_equal [30, 'trialing'], billing('enterprise').values_at('trial_days', 'billing_status')
    assert_equal [0, 'active'], billing('free').values_at('trial_days', 'billing_status')
  end

  def test_billing_down_fails_retryably
    assert_refused('BILLING_SERVICE_UNAVAILABLE', /retried with backoff/, retryable: true) do
      billing('pro', billing_down: true)
    end
  end

  def test_a_malformed_account_is_invalid_input
    context = step_context('setup_billing_profile',
                           dependency_results: { 'create_user_account' => account.except('user_id') })
    assert_refused('invalid_input', /missing field `user_id`/) { SetupBillingProfileHandler.new.call(context) }
    context = step_context('setup_billing_profile',
                           dependency_results: { 'create_user_account' => account.merge('plan' => 3) })
    assert_refused('invalid_input', /field `plan` is not a string/) { SetupBillingProfileHandler.new.call(context) }
    assert_refused('invalid_input', /has no result from "create_user_account"/) do
      SetupBillingProfileHandler.new.call(step_context('setup_billing_profile'))
    end
  end

  def preferences(plan, overrides = nil)
    context = overrides.nil? ? {} : { 'preferences' => overrides }
    results = { 'create_user_account' => account(plan:) }
    InitializePreferencesHandler.new.call(step_context('initialize_preferences', context:, dependency_results: results))
  end

  def test_preferences_follow_the_plan_and_the_request
    result = preferences('free')
    assert_equal({ 'notifications' => { 'email' => true, 'push' => false, 'sms' => false }, 'language' => 'en',
                   'theme' => 'light' }, result['preferences'])
    assert_equal %w[usr_0123456789abcdef01234567 ruby], result.values_at('user_id', 'language')
    assert_match RFC3339, result['created_at']
    assert preferences('pro')['preferences']['notifications']['push']
    overridden = preferences('pro', { 'notifications' => { 'sms' => true, 'push' => false }, 'language' => 'fr' })
    assert_equal({ 'notifications' => { 'email' => true, 'push' => false, 'sms' => true }, 'language' => 'fr',
                   'theme' => 'light' }, overridden['preferences'])
    assert_equal 'en', preferences('pro', 'not an object')['preferences']['language']
  end

  def welcome(plan:, trial_days:, push:, name: 'Jane')
    results = {
      'create_user_account' => account(plan:, name:),
      'setup_billing_profile' => { 'trial_days' => trial_days },
      'initialize_preferences' => { 'preferences' => { 'notifications' => { 'push' => push } } }
    }
    SendWelcomeSequenceHandler.new.call(step_context('send_welcome_sequence', dependency_results: results))
  end

  def test_the_welcome_sequence_adapts_to_billing_and_preferences
    result = welcome(plan: 'pro', trial_days: 14, push: true)
    assert_equal [%w[email push], 3, 'sent', 'ruby'], result.values_at('channels_used', 'messages_sent', 'status',
                                                                       'language')
    assert_equal [
      { 'channel' => 'email', 'type' => 'welcome', 'recipient' => 'new.user@example.com',
        'subject' => 'Welcome to Tasker, Jane!' },
      { 'channel' => 'email', 'type' => 'trial_started', 'recipient' => 'new.user@example.com',
        'subject' => 'Your Pro trial has started' },
      { 'channel' => 'push', 'type' => 'welcome', 'body' => "Your pro account is ready. Let's get started!" }
    ], result['messages']
    assert_match RFC3339, result['sent_at']
    plain = welcome(plan: 'free', trial_days: 0, push: false, name: nil)
    assert_equal [['email'], 1], plain.values_at('channels_used', 'messages_sent')
    assert_equal 'Welcome to Tasker, new.user@example.com!', plain['messages'][0]['subject']
    # Only a positive whole number of days is a trial; only true is a yes.
    assert_equal 1, welcome(plan: 'pro', trial_days: 14.0, push: 'yes')['messages_sent']
    # Only the first letter of the plan is capitalized.
    trial = welcome(plan: 'proPlus', trial_days: 1, push: false)['messages'][1]
    assert_equal 'Your ProPlus trial has started', trial['subject']
  end

  def test_the_user_is_activated
    results = { 'create_user_account' => account, 'send_welcome_sequence' => { 'status' => 'sent' } }
    result = UpdateUserStatusHandler.new.call(step_context('update_user_status', dependency_results: results))
    assert_equal ['usr_0123456789abcdef01234567', 'active', true, 'ruby'],
                 result.values_at('user_id', 'status', 'welcome_sent', 'language')
    assert_match RFC3339, result['activated_at']
    results['send_welcome_sequence'] = 'not an object'
    unsent = UpdateUserStatusHandler.new.call(step_context('update_user_status', dependency_results: results))
    refute unsent['welcome_sent']
  end

  def test_the_latency_parses_and_waits
    latency = Microservices::Latency.parse('5..6')
    assert_equal [5, 6], [latency.low, latency.high]
    started = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    latency.wait
    assert_operator Process.clock_gettime(Process::CLOCK_MONOTONIC) - started, :>=, 0.005
    assert_raises(ArgumentError) { Microservices::Latency.parse('40') }
    assert_raises(ArgumentError) { Microservices::Latency.parse('a..9') }
  end
end
